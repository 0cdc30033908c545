"""The provider simulator: a stand-in for the payment providers, importing nothing of Moneta."""
