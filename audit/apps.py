from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit and events"

    def ready(self) -> None:
        # signals binds the worker's actor to Celery tasks; staff audits users and rights.
        from audit import signals, staff  # noqa: F401

        staff.connect()
