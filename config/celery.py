"""The Celery application: `celery -A config worker`."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("moneta")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs: Any) -> None:
    """Around each task, what Django does around each request: close the database
    connections that are unusable or older than CONN_MAX_AGE, keep the others. Celery's
    own Django fixup would close every connection before and after every task (it does
    not look at CONN_MAX_AGE), so that each task opened a new PostgreSQL session;
    CELERY_DB_REUSE_MAX in the settings keeps it from doing so."""
    task = kwargs.get("task")
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inside its caller (the demo, tests): the caller's connection
    close_old_connections()
