"""Payment providers: one adapter per provider behind `base.ProviderAdapter`."""
