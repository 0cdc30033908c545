"""`manage.py run_schedule`: Celery beat's schedule (settings.CELERY_BEAT_SCHEDULE) run in
this process, each entry when due, until SIGINT or SIGTERM; for the demo and small
installs that run no beat (core/schedule.py)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from core.schedule import schedule_entries, schedule_run


class Command(BaseCommand):
    help = (
        "Run every entry of CELERY_BEAT_SCHEDULE in this process when it is due (the "
        "janitor, hold expiry, authorization deadlines, ...), for installs without Celery "
        "beat, such as the demo. An entry's failure is logged and the others go on. "
        "SIGINT or SIGTERM stops it once the entry under way has finished."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--once", action="store_true", help="run every entry once, in order, and exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        entries = schedule_entries(settings.CELERY_BEAT_SCHEDULE)
        stop = threading.Event()

        def stop_on(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {
            signum: signal.signal(signum, stop_on) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if not options["once"]:
                self.stdout.write(
                    f"Running {len(entries)} scheduled tasks when due "
                    f"({', '.join(e.name for e in entries)}); Ctrl-C stops."
                )
                self.stdout.flush()
            failures = schedule_run(entries, stop=stop, once=options["once"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        ran = "Ran every entry once" if options["once"] else "Stopped"
        self.stdout.write(f"{ran}; {failures} run{'' if failures == 1 else 's'} failed.")
