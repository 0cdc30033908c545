from celery import shared_task

from ledger.holds import holds_expire_due


@shared_task(name="ledger.tasks.expire_holds")
def expire_holds() -> int:
    """Scheduled every minute by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return holds_expire_due()
