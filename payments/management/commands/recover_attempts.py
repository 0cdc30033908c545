"""`manage.py recover_attempts`: one round of the janitor now (Celery beat runs it every
30 seconds): the providers asked about every unresolved attempt, of any kind, quiet for
PAYMENT_RECOVERY_AFTER_SECONDS."""

from typing import Any

from audit.management import AuditedCommand
from payments.attempts import attempts_recover_due


class Command(AuditedCommand):
    help = (
        "Ask the providers about every payment, refund and payout attempt whose outcome is "
        "unknown, or pending with no news for PAYMENT_RECOVERY_AFTER_SECONDS, and apply what "
        "they say: the janitor's round, which Celery beat runs every 30 seconds (the demo "
        "runs no beat). Prints how many attempts ended."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        ended = attempts_recover_due()
        self.stdout.write(f"{ended} attempt{'' if ended == 1 else 's'} ended.")
