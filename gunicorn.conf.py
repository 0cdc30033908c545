"""gunicorn settings for production:

    .venv/bin/gunicorn -c gunicorn.conf.py config.wsgi:application

Sized by measurement on a 2-core machine (docs/benchmarks.md): 2 × cores = 4 single-threaded
(sync) worker processes, each with its own persistent database connection. An API request
is a few short database round trips; while one worker waits on PostgreSQL another runs, and
more processes than that only add context switches (5 gthread workers × 2 threads served
fewer requests, with a worse p99). Sync workers read each request whole and close the
connection after the response, so they belong behind a buffering proxy or load balancer
(which is where a payment API runs anyway); without one, use threads. Environment:

- BIND (default 127.0.0.1:$PORT, PORT default 8000): where to listen; BIND=0.0.0.0:8000
  in a container, behind the load balancer.
- WEB_CONCURRENCY (default 2 × cores), GUNICORN_THREADS (default 1; more than 1 switches to
  gthread workers, which keep client connections alive).
- GUNICORN_TIMEOUT (30 s), GUNICORN_KEEPALIVE (5 s, gthread only; set it above the load
  balancer's idle timeout when there is one).
- GUNICORN_MAX_REQUESTS (default 0, off): recycle a worker after this many requests (with
  10 % jitter), to bound a slow leak. A worker boot costs seconds of CPU, so keep it large.
- LOG_FORMAT: json (default) writes gunicorn's own and access log lines as JSON objects,
  like Django's (config.settings.LOGGING); text for humans. GUNICORN_LOG_LEVEL (info):
  the level of gunicorn's own lines.
- FORWARDED_ALLOW_IPS (127.0.0.1,::1): the proxies whose X-Forwarded-* headers are trusted.
- PROMETHEUS_MULTIPROC_DIR: where the workers share their Prometheus metrics, so that
  /metrics reports all of them; a fresh temporary directory when unset.
"""

import os
import shutil
import tempfile
import traceback
from datetime import timedelta
from typing import Any

from gunicorn import glogging


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 2


bind = [os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * _cores()))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# Recycling workers bounds slow leaks, but each boot costs seconds of CPU that requests
# wait for; off unless asked. The jitter keeps workers from all restarting at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
# The workers' heartbeat files on tmpfs: a disk under load cannot stall them into a timeout.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn creates its files there with mkstemp
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM
# Trust X-Forwarded-* only from a proxy on this machine (gunicorn's default).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "moneta"

errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json").lower()


class JsonAccessLogger(glogging.Logger):
    """One access log record per request with its fields as record attributes (rendered
    as JSON by the formatter below), the request id among them."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            atoms = self.atoms(resp, req, environ, request_time)
            status = str(atoms["s"])
            elapsed = request_time if isinstance(request_time, timedelta) else timedelta(0)
            fields = {
                "request_id": atoms.get("{x-request-id}o", ""),
                "remote_addr": atoms["h"],
                "method": atoms["m"],
                "path": atoms["U"],
                "query": atoms["q"] or "",
                "protocol": atoms["H"],
                "status": int(status) if status.isdigit() else status,
                "response_bytes": atoms["B"],
                "duration_ms": round(elapsed.total_seconds() * 1000, 3),
                "referer": atoms["f"],
                "user_agent": atoms["a"],
            }
            self.access_log.info("%s %s %s", atoms["m"], atoms["U"], status, extra=fields)
        except Exception:
            self.error(traceback.format_exc())


if LOG_FORMAT == "text":
    accesslog = "-"
    access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
else:
    logger_class = JsonAccessLogger
    # Setting logconfig_dict also turns the access log on.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": "time",
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            # GUNICORN_LOG_LEVEL for gunicorn's own lines, as in text mode.
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["console"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }


# Prometheus: each worker writes its metrics to files in one directory, which /metrics
# (django-prometheus) sums up; the directory must start empty and dead workers' files
# must be marked. Set here, before the workers import prometheus_client.
_OWN_METRICS_DIR = "MONETA_OWN_PROMETHEUS_DIR"  # the directory on_starting made, if any


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="moneta-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_OWN_METRICS_DIR] = directory
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if os.environ.get(_OWN_METRICS_DIR):
        shutil.rmtree(os.environ[_OWN_METRICS_DIR], ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    """Import the URLconf (DRF, the API views) as the worker boots, not during its first
    request, which a readiness probe with a short timeout could otherwise fail."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loads and caches the URLconf
