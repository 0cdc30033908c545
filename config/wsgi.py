import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Import the URLconf (DRF, the API views) as a worker boots, not during its first request,
# which a readiness probe with a short timeout could otherwise fail.
get_resolver().url_patterns  # noqa: B018 - loads and caches the URLconf

# What is loaded by now (modules, settings, the URLconf) lives as long as the worker: out of
# the garbage collector's way, its full passes have that much less to walk (about 5 % of a
# balance read's CPU, docs/benchmarks.md).
gc.freeze()
