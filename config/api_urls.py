"""/api/v1/: the public API (SPEC §4.2). Paths have no trailing slash, as in the SPEC."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import SimpleRouter

from accounts.api.views import AccountViewSet, CustomerViewSet
from audit.api.views import EventViewSet
from payments.api.views import TransferViewSet

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")
router.register("accounts", AccountViewSet, basename="account")
router.register("transfers", TransferViewSet, basename="transfer")
router.register("events", EventViewSet, basename="event")

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(
            authentication_classes=[], permission_classes=[], throttle_classes=[]
        ),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularRedocView.as_view(
            url_name="schema",
            template_name="api/redoc.html",
            authentication_classes=[],
            permission_classes=[],
            throttle_classes=[],
        ),
        name="docs",
    ),
    path("", include(router.urls)),
]
