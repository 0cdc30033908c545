"""/api/v1/: the public API (SPEC §4.2). Paths have no trailing slash, as in the SPEC."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from accounts.api.views import AccountViewSet, CustomerViewSet
from audit.api.views import EventViewSet
from core.api.views import ApiIndexView, CachedSchemaView, DocsView
from ledger.api.views import AccountLedgerViewSet
from payments.api.views import (
    FxQuoteViewSet,
    PaymentViewSet,
    PayoutViewSet,
    RefundViewSet,
    TransferViewSet,
)
from webhooks.api.views import WebhookDeliveryViewSet, WebhookEndpointViewSet

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")
router.register("accounts", AccountViewSet, basename="account")
router.register("transfers", TransferViewSet, basename="transfer")
router.register("fx_quotes", FxQuoteViewSet, basename="fx_quote")
router.register("payments", PaymentViewSet, basename="payment")
router.register("refunds", RefundViewSet, basename="refund")
router.register("payouts", PayoutViewSet, basename="payout")
router.register("events", EventViewSet, basename="event")
router.register("webhook_endpoints", WebhookEndpointViewSet, basename="webhook_endpoint")
router.register("webhook_deliveries", WebhookDeliveryViewSet, basename="webhook_delivery")
# An account's balance and entries are the ledger's (ADR 0012), under the account's paths
# and route names (`account-balance`, `account-entries`): a router of their own, as one
# router takes each basename once.
ledger_router = SimpleRouter(trailing_slash=False)
ledger_router.register("accounts", AccountLedgerViewSet, basename="account")
# Every route of a resource, both routers'.
routes = [*router.urls, *ledger_router.urls]

urlpatterns = [
    path("", ApiIndexView.as_view(), name="api-index"),
    path("schema/", CachedSchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="docs"),
    path("", include(routes)),
]
