from django.contrib import admin
from django.urls import include, path

from core import health
from payments.api.provider_webhooks import provider_webhook_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    # Providers' own news: no API key, their signature (payments/api/provider_webhooks.py).
    path(
        "webhooks/providers/<str:provider>/",
        provider_webhook_view,
        name="provider-webhook",
    ),
    # Probes and metrics: no authentication; keep /metrics off the public internet.
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("", include("django_prometheus.urls")),  # /metrics
]

handler404 = "core.api.errors.not_found_view"
handler500 = "core.api.errors.server_error_view"
