from celery import shared_task

from accounts.services import holds_expire_due


@shared_task(name="accounts.tasks.expire_holds")
def expire_holds() -> int:
    """Scheduled every minute by Celery beat (CELERY_BEAT_SCHEDULE)."""
    return holds_expire_due()
