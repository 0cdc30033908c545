from django.apps import AppConfig


class SimulatorAppConfig(AppConfig):
    """A Django app only for its management command, run_provider_simulator."""

    name = "simulator"
    verbose_name = "Provider simulator"
