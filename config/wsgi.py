import gc
import os

import django
from django.urls import get_resolver

from core.wsgi import Handler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django's get_wsgi_application(), with the project's request class.
django.setup(set_prefix=False)
application = Handler()

# Import the URLconf (DRF, the API views) as a worker boots, not during its first request,
# which a readiness probe with a short timeout could otherwise fail.
get_resolver().url_patterns  # noqa: B018 - loads and caches the URLconf

# What is loaded by now (modules, settings, the URLconf) lives as long as the worker: out of
# the garbage collector's way, its full passes have that much less to walk (about 5 % of a
# balance read's CPU, docs/benchmarks.md).
gc.freeze()
