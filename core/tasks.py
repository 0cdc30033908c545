from celery import shared_task

from core.services import idempotency_keys_purge


@shared_task(name="core.tasks.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Scheduled hourly by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return idempotency_keys_purge()
