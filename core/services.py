"""Housekeeping of the core app's own tables."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core.models import IdempotencyKey, IdempotencyKeyState


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete the idempotency keys past IDEMPOTENCY_KEY_TTL_HOURS; return how many.

    A completed key is kept that long from its completion, not its first claim: a key
    taken over and completed late is still replayed for a whole window. Keys left in
    flight that long since their last claim go too: their holder crashed and was never
    retried (the lock timeout is far shorter, so no live request holds them, and a holder
    that came back would fail its fenced UPDATE).
    """
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(
        Q(state=IdempotencyKeyState.COMPLETED, completed_at__lt=cutoff)
        | Q(state=IdempotencyKeyState.IN_FLIGHT, locked_at__lt=cutoff, created_at__lt=cutoff),
    ).delete()
    return deleted
