"""Settings, read from the environment (SPEC §4.5). Defaults serve the one-command demo."""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY", default="demo-insecure-secret-key-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Behind a proxy that terminates TLS and always sets X-Forwarded-Proto (and strips a
# client's own): requests it marks https are secure (request.is_secure(), which the admin's
# CSRF Origin check needs). Trusted from any peer: only with such a proxy in front.
TRUST_X_FORWARDED_PROTO = env.bool("TRUST_X_FORWARDED_PROTO", default=False)
if TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# SPEC §4.5: the site is reached only over HTTPS, TLS ending at the proxy in front, which
# says so in X-Forwarded-Proto (so HTTPS needs TRUST_X_FORWARDED_PROTO: without it every
# request would look like plain HTTP and be redirected forever). Plain HTTP otherwise, for
# local runs and the demo.
if env.bool("HTTPS", default=False):
    if not TRUST_X_FORWARDED_PROTO:
        raise ImproperlyConfigured(
            "HTTPS=true needs TRUST_X_FORWARDED_PROTO=true: TLS ends at the proxy in front, "
            "and X-Forwarded-Proto is how the app learns that a request came over HTTPS"
        )
    SECURE_SSL_REDIRECT = True
    # Load balancers probe over plain HTTP, without the proxy's header; so may Prometheus.
    SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc, served from STATIC_ROOT (no CDN)
    "djmoney",
    "simple_history",
    "django_prometheus",
    "core",
    "audit",
    "accounts",
    "ledger",
    "payments",
    "webhooks",
    "bench",
    "simulator",
]

MIDDLEWARE = [
    # Request metrics (a few of django-prometheus's, cheaper): outermost, so that their
    # latency covers the whole request.
    "core.metrics.PrometheusMiddleware",
    "audit.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Redoc) from STATIC_ROOT, before anything else runs.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.headers.ApiNoStoreMiddleware",
    "core.headers.ContentSecurityPolicyMiddleware",
    # A body the WSGI handler refused (chunked, a bad length, cut short): answered here,
    # inside the security and no-store headers like every other answer.
    "core.wsgi.BodyFramingMiddleware",
    # Django's session, user and message middleware and simple-history's, skipped on the
    # API, probes and /metrics, which use none of them (core/middleware.py).
    "core.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "core.middleware.HistoryRequestMiddleware",
    "core.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# One access log line per request, written by the app (the server writes none): on unless
# ACCESS_LOG=false; off by default with DEBUG, where runserver prints its own.
ACCESS_LOG = env.bool("ACCESS_LOG", default=not DEBUG)
if ACCESS_LOG:
    MIDDLEWARE.insert(1, "core.logging.AccessLogMiddleware")
if DEBUG:
    # The API's 404s in JSON even where Django would show its debug page (the demo).
    MIDDLEWARE.insert(
        MIDDLEWARE.index("audit.middleware.RequestIdMiddleware") + 1,
        "core.api.errors.DebugApiNotFoundMiddleware",
    )

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Transactions belong to services, never to requests.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: opening a PostgreSQL backend per request costs more than most
# requests do. Health checks drop a connection the server closed before reusing it.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, with a health check that asks the socket, not the server.
    DATABASES["default"]["ENGINE"] = "core.postgresql"
    # Server-side parameter binding lets psycopg prepare the statements a connection keeps
    # repeating (after 5 runs): PostgreSQL then parses and plans each once per connection,
    # which halves its CPU on an API read (ADR 0007). Turn it off behind a pooler that does
    # not support prepared statements (PgBouncer in transaction mode before 1.21).
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )
    # A session whose client died (a killed worker) while it runs a statement, say waiting
    # for a row lock, is ended within this many milliseconds instead of when the statement
    # ends: its locks are freed, and its Idempotency-Keys can be taken over (ADR 0006).
    # 0 turns the check off (a pooler that refuses startup options; a server not on Linux,
    # macOS or a BSD).
    client_check_ms = env.int("DATABASE_CLIENT_CONNECTION_CHECK_MS", default=1000)
    if client_check_ms:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c client_connection_check_interval={client_check_ms}"
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Filled by `collectstatic` (bin/_bootstrap.sh; bin/serve when it is missing), served by
# WhiteNoise: hashed names (cached for ever) and gzip-compressed copies.
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Keys the HMAC that stores API key secrets; rotating it invalidates every API key.
API_KEY_HASH_SECRET = env.str("API_KEY_HASH_SECRET", default=SECRET_KEY)

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# The default cache holds the API's rate-limit counters, shared by every worker: Redis at
# REDIS_URL whenever DATABASE_URL is set. The demo (no DATABASE_URL) needs no Redis and
# uses per-process local memory. CACHE_URL (redis://…, locmemcache://) overrides both.
CACHES = {
    "default": env.cache_url(
        "CACHE_URL",
        default=REDIS_URL if env.str("DATABASE_URL", default="") else "locmemcache://",
    )
}
CACHES["default"].setdefault("KEY_PREFIX", "moneta")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that does not answer costs a request at most this long (rate limiting then
    # lets the request through; /health/ready reports Redis down).
    CACHES["default"].setdefault("OPTIONS", {}).update(socket_connect_timeout=1, socket_timeout=1)

CELERY_BROKER_URL = REDIS_URL
if CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport, keeping one client per channel (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Redis hands a task that a worker took but never acknowledged (acks_late: a killed
# worker's) to another worker after this many seconds. It must stay above the longest
# countdown a task waits in a worker (a retry's backoff, up to
# PAYMENT_TASK_BACKOFF_MAX_SECONDS) plus its run, or Redis gives a waiting task to a second
# worker as well. A killed worker's payment attempt does not wait for it: the janitor
# (PAYMENT_RECOVERY_AFTER_SECONDS) asks the provider and finishes it.
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.int("BROKER_VISIBILITY_TIMEOUT_SECONDS", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS}
# Celery's Django fixup closes every database connection before and after each task
# unless this is set, and then only every this many tasks: config/celery.py closes the
# connections that are unusable or past DATABASE_CONN_MAX_AGE instead, as Django does per
# request, and the worker keeps its PostgreSQL sessions between tasks.
CELERY_DB_REUSE_MAX = 1_000_000
# How often the janitor's round runs (payments.tasks.recover_attempts; see
# PAYMENT_RECOVERY_AFTER_SECONDS below). The demo runs it every second (bin/demo).
PAYMENT_RECOVERY_INTERVAL_SECONDS = env.float("PAYMENT_RECOVERY_INTERVAL_SECONDS", default=30.0)
# Run by Celery beat, or by `manage.py run_schedule` where no beat runs (the demo).
CELERY_BEAT_SCHEDULE = {
    "expire-holds": {"task": "ledger.tasks.expire_holds", "schedule": timedelta(minutes=1)},
    "purge-idempotency-keys": {
        "task": "core.tasks.purge_idempotency_keys",
        "schedule": timedelta(hours=1),
    },
    "cancel-expired-authorizations": {
        "task": "payments.tasks.cancel_expired_authorizations",
        "schedule": timedelta(minutes=5),
    },
    "recover-payment-attempts": {
        "task": "payments.tasks.recover_attempts",
        "schedule": timedelta(seconds=PAYMENT_RECOVERY_INTERVAL_SECONDS),
    },
    "sweep-provider-webhooks": {
        "task": "payments.tasks.sweep_provider_webhooks",
        "schedule": timedelta(minutes=1),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.HasApiKey"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.negotiation.JsonNegotiation",
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.NewestFirstPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.MonetaAutoSchema",
    "DEFAULT_METADATA_CLASS": "core.api.metadata.SchemaPointerMetadata",
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.api.throttling.ApiKeyRateThrottle",
        "core.api.throttling.AnonymousRateThrottle",
    ],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Moneta API",
    "DESCRIPTION": (
        "Accounts, balances, ledger entries, transfers, FX quotes, payments and events of one "
        "merchant.\n\n"
        "Authenticate with `Authorization: Bearer <api key>`. Amounts are integers in the "
        "currency's minor units (1 to 10^12); currencies are ISO 4217 codes in any case, "
        "returned upper case. Request bodies are JSON objects; unknown fields are refused. "
        'Every error is `{"error": {"type", "code", "message", "param"}}`. Lists are '
        "newest first, paginated with an opaque `cursor`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "REDOC_DIST": "SIDECAR",  # drf-spectacular-sidecar's copy, not a CDN's
    # An endpoint's three shapes (plain, with its secret, deleted) share these enums.
    "ENUM_NAME_OVERRIDES": {
        "WebhookEndpointObjectEnum": ["webhook_endpoint"],
        "WebhookEndpointStatusEnum": ["enabled", "disabled"],
    },
}
# Idempotency-Key (SPEC §4.1, docs/adr/0006): a completed key is kept (and replayed) at
# least this long; a key still in flight whose holder has not finished after the lock
# timeout is taken over by the next retry with the same request.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
IDEMPOTENCY_KEY_LOCK_TIMEOUT_SECONDS = env.int("IDEMPOTENCY_KEY_LOCK_TIMEOUT_SECONDS", default=60)
# Largest JSON body the API reads; larger requests get 413 before being parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
# Requests per API key: N/second, N/minute, N/hour or N/day, in fixed windows; "off"
# disables it. Over the limit: 429 rate_limit_error with Retry-After.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="100/second")
# Requests without a valid API key (none, an invalid one, the schema and docs) per client
# address (IPv6: per /64), in the same syntax; beyond it 429 with Retry-After.
API_ANONYMOUS_RATE_LIMIT = env.str("API_ANONYMOUS_RATE_LIMIT", default="60/minute")

# Providers (docs/providers.md, "The adapters"). Set: the adapters talk HTTP to the
# simulator at this base URL (Stripe's format at it, Adyen's under /adyen); unset (the
# demo): to the simulator's WSGI application in this process.
PROVIDER_SIMULATOR_URL = env.str("PROVIDER_SIMULATOR_URL", default="")
# The in-process simulator's state (SQLite), shared by the demo's processes, and how long
# it takes to settle pm_card_async, refunds and payouts.
PROVIDER_SIMULATOR_STORE = env.str(
    "PROVIDER_SIMULATOR_STORE", default=str(BASE_DIR / ".cache" / "provider_simulator.sqlite3")
)
PROVIDER_SIMULATOR_ASYNC_SECONDS = env.float("PROVIDER_SIMULATOR_ASYNC_SECONDS", default=2.0)

# Payments (SPEC §3). Where a merchant's payments go when it names no provider of its own.
PAYMENT_DEFAULT_PROVIDER = env.str("PAYMENT_DEFAULT_PROVIDER", default="stripe")
# A manual-capture payment not captured this long after its authorization is canceled.
PAYMENT_AUTHORIZATION_DAYS = env.int("PAYMENT_AUTHORIZATION_DAYS", default=7)
# A provider call whose outcome is temporary (an error, a timeout) is retried by its task
# this many times, after min(cap, base * 2^n) seconds with full jitter (or the provider's
# Retry-After when longer), then recorded as a dead letter.
PAYMENT_TASK_MAX_RETRIES = env.int("PAYMENT_TASK_MAX_RETRIES", default=8)
PAYMENT_TASK_BACKOFF_SECONDS = env.float("PAYMENT_TASK_BACKOFF_SECONDS", default=1.0)
PAYMENT_TASK_BACKOFF_MAX_SECONDS = env.float("PAYMENT_TASK_BACKOFF_MAX_SECONDS", default=300.0)
# The janitor (payments.tasks.recover_attempts) asks the provider about attempts whose
# outcome is unknown, or pending with no news for this long; after this many rounds an
# attempt it still cannot finish becomes a dead letter.
PAYMENT_RECOVERY_AFTER_SECONDS = env.int("PAYMENT_RECOVERY_AFTER_SECONDS", default=60)
PAYMENT_RECOVERY_MAX_ROUNDS = env.int("PAYMENT_RECOVERY_MAX_ROUNDS", default=20)
# Credentials; the defaults are the simulator's.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="sk_test_moneta")
STRIPE_WEBHOOK_SECRET = env.str(
    "STRIPE_WEBHOOK_SECRET", default="whsec_bW9uZXRhLXNpbXVsYXRvci13ZWJob29rLXNlY3JldCE="
)
ADYEN_API_KEY = env.str("ADYEN_API_KEY", default="adyen_test_moneta")
ADYEN_HMAC_KEY = env.str(
    "ADYEN_HMAC_KEY", default="4d6f6e6574612d73696d756c61746f722d416479656e2d484d41432d6b657921"
)
ADYEN_MERCHANT_ACCOUNT = env.str("ADYEN_MERCHANT_ACCOUNT", default="MonetaTest")
# Per provider: seconds to open a connection, and to wait for each read of an answer.
STRIPE_CONNECT_TIMEOUT_SECONDS = env.float("STRIPE_CONNECT_TIMEOUT_SECONDS", default=3.0)
STRIPE_READ_TIMEOUT_SECONDS = env.float("STRIPE_READ_TIMEOUT_SECONDS", default=10.0)
ADYEN_CONNECT_TIMEOUT_SECONDS = env.float("ADYEN_CONNECT_TIMEOUT_SECONDS", default=3.0)
ADYEN_READ_TIMEOUT_SECONDS = env.float("ADYEN_READ_TIMEOUT_SECONDS", default=10.0)
# Retries inside one call (same idempotency key): after a connection failure, a 409, 429
# or 5xx; never after a read timeout (the task asks again later). Exponential backoff with
# jitter from the base delay, or the provider's Retry-After; a Retry-After longer than the
# max delay is not waited for in the call: the result carries it to the task.
PROVIDER_MAX_NETWORK_RETRIES = env.int("PROVIDER_MAX_NETWORK_RETRIES", default=2)
PROVIDER_RETRY_BASE_DELAY_SECONDS = env.float("PROVIDER_RETRY_BASE_DELAY_SECONDS", default=0.25)
PROVIDER_RETRY_MAX_DELAY_SECONDS = env.float("PROVIDER_RETRY_MAX_DELAY_SECONDS", default=2.0)
# A provider's answer longer than this is refused unread (an unknown outcome).
PROVIDER_MAX_RESPONSE_BYTES = env.int("PROVIDER_MAX_RESPONSE_BYTES", default=1024 * 1024)
# Inbound webhooks: the largest body read, and how old a signed timestamp may be.
PROVIDER_WEBHOOK_MAX_BODY_BYTES = env.int("PROVIDER_WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
PROVIDER_WEBHOOK_TOLERANCE_SECONDS = env.int("PROVIDER_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Inbound webhooks whose object we do not know yet (it raced ahead of our own record) are
# parked and tried again: after RETRY_SECONDS, doubled each time (capped at
# PAYMENT_TASK_BACKOFF_MAX_SECONDS), MAX_TRIES tries in all, then a dead letter. One still
# `received` after SWEEP_AFTER_SECONDS (its task never sent: the broker was down) has its
# task sent again by the sweep (Celery beat), at most SWEEP_BATCH a round; so does one
# still `parked` that long after its whole schedule (its retry lost).
PROVIDER_WEBHOOK_MAX_TRIES = env.int("PROVIDER_WEBHOOK_MAX_TRIES", default=8)
PROVIDER_WEBHOOK_RETRY_SECONDS = env.float("PROVIDER_WEBHOOK_RETRY_SECONDS", default=2.0)
PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS = env.int("PROVIDER_WEBHOOK_SWEEP_AFTER_SECONDS", default=60)
PROVIDER_WEBHOOK_SWEEP_BATCH = env.int("PROVIDER_WEBHOOK_SWEEP_BATCH", default=1000)
# Circuit breaker per provider: opens after this many failed calls in a row (errors and
# unknown outcomes; declines are answers), lets a trial call through after the reset time.
# Its state lives in Redis (REDIS_URL), shared by every process, whenever DATABASE_URL is
# set; in the demo (no Redis) in each process's memory. PROVIDER_CIRCUIT_STORAGE: redis |
# memory overrides.
PROVIDER_CIRCUIT_FAILURES = env.int("PROVIDER_CIRCUIT_FAILURES", default=5)
PROVIDER_CIRCUIT_RESET_SECONDS = env.float("PROVIDER_CIRCUIT_RESET_SECONDS", default=30.0)
PROVIDER_CIRCUIT_STORAGE = env.str(
    "PROVIDER_CIRCUIT_STORAGE",
    default="redis" if env.str("DATABASE_URL", default="") else "memory",
)
if PROVIDER_CIRCUIT_STORAGE not in ("redis", "memory"):
    raise ImproperlyConfigured("PROVIDER_CIRCUIT_STORAGE must be redis or memory")

# Outbound webhooks (docs/webhooks.md). Off: endpoints must be https URLs of hosts whose
# every address is public, checked when registered and on every connection.
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=True)
# Seconds to connect, and for each read and write, of a delivery's POST.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Seconds between a delivery's failed attempt and the next, each ± WEBHOOK_RETRY_JITTER (a
# fraction); after the last, the delivery is dead (a dead letter). The default: 5 s, 5 min,
# 30 min, 2 h, 5 h, then 10 h seven times: 13 attempts over about 3 days and 5 hours.
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    float(seconds)
    for seconds in env.list(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS",
        default=["5", "300", "1800", "7200", "18000", *["36000"] * 7],
    )
]
WEBHOOK_RETRY_JITTER = env.float("WEBHOOK_RETRY_JITTER", default=0.2)
# How long a delivery whose task was sent is left to that task before the relay sends
# another (the task was lost: Redis down, a worker killed before it started).
WEBHOOK_DISPATCH_LEASE_SECONDS = env.int("WEBHOOK_DISPATCH_LEASE_SECONDS", default=30)
# Celery beat runs the relay this often (it also runs after every commit that wrote events).
WEBHOOK_RELAY_INTERVAL_SECONDS = env.float("WEBHOOK_RELAY_INTERVAL_SECONDS", default=1.0)
# Events (and due deliveries) one relay transaction takes.
WEBHOOK_RELAY_BATCH = env.int("WEBHOOK_RELAY_BATCH", default=500)
# The relay run after a commit makes the first attempts of the deliveries it created
# itself when there are at most this many (a task for each otherwise; 0: always tasks).
WEBHOOK_RELAY_INLINE_MAX = env.int("WEBHOOK_RELAY_INLINE_MAX", default=4)
# A process sends at most one post-commit relay this often, that relay `countdown` seconds
# later, covering every event committed meanwhile (0: one relay per commit, at once).
WEBHOOK_RELAY_COALESCE_SECONDS = env.float("WEBHOOK_RELAY_COALESCE_SECONDS", default=0.2)
# After a secret's rotation, the old one signs too (beside the new) for this long.
WEBHOOK_SECRET_GRACE_HOURS = env.int("WEBHOOK_SECRET_GRACE_HOURS", default=24)
CELERY_BEAT_SCHEDULE["relay-webhooks"] = {
    "task": "webhooks.tasks.relay",
    "schedule": timedelta(seconds=WEBHOOK_RELAY_INTERVAL_SECONDS),
}

# Ledger reconciliation: a provider clearing account whose balance is further than this
# from zero (in minor units) is reported as a break by `reconcile_ledger`.
RECONCILE_CLEARING_THRESHOLD = env.int("RECONCILE_CLEARING_THRESHOLD", default=10_000_000)
# ... and an FX system account whose open position (its balance, in minor units of its
# currency) is further than this from zero.
RECONCILE_FX_POSITION_LIMIT = env.int("RECONCILE_FX_POSITION_LIMIT", default=100_000_000)
# How long an FX quote's rate is good for (SPEC §3, Multi-currency).
FX_QUOTE_TTL_SECONDS = env.int("FX_QUOTE_TTL_SECONDS", default=300)
# How many times a money-moving service retries a transaction that PostgreSQL aborted
# with a deadlock or serialization failure before the error reaches the caller.
MONEY_TRANSACTION_RETRIES = env.int("MONEY_TRANSACTION_RETRIES", default=5)

# Logs go to stderr: one JSON object per line (LOG_FORMAT=json, the default) or text for
# humans (LOG_FORMAT=text). Every record carries request_id, actor_type and actor.
LOG_FORMAT = env.str("LOG_FORMAT", default="json").lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "audit.logging.RequestContextFilter"}},
    "formatters": {
        "json": {
            "()": "core.logging.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if LOG_FORMAT == "text" else "json",
            "filters": ["request_context"],
        }
    },
    # Django's own loggers (requests, runserver) log through the root handler, once.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # The provider clients' libraries log every request at INFO (three lines per call):
        # their warnings only; the attempts record the calls.
        "stripe": {"handlers": [], "level": "WARNING", "propagate": True},
        "httpx": {"handlers": [], "level": "WARNING", "propagate": True},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
