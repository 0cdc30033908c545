from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # Register the tasks with Celery in every process, not only in workers (which
        # autodiscover them): the web process sends them by name after commit.
        from payments import tasks  # noqa: F401
