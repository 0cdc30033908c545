from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit and events"

    def ready(self) -> None:
        from audit import signals  # noqa: F401  - binds the worker's actor to Celery tasks
