"""core.metrics.PrometheusMiddleware: responses by status, view and method, latency by view
and method, exceptions by type and view, under django-prometheus's names."""

from collections.abc import Callable

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from core import metrics
from tests import prometheus
from tests.prometheus import Samples


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


# The project's URLs and a view that raises.
urlpatterns = [path("explode", explode, name="explode"), *project_urlpatterns]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def client() -> Client:
    """A client that gets the 500 page instead of the view's exception."""
    return Client(raise_request_exception=False)


def added_by(client: Client, requests: Callable[[], object]) -> Callable[..., float]:
    """How much each series grew while `requests` ran: `added(name, **labels)`."""
    before = prometheus.scrape(client)
    requests()
    after: Samples = prometheus.scrape(client)

    def added(name: str, **labels: str) -> float:
        return prometheus.value(after, name, **labels) - prometheus.value(before, name, **labels)

    return added


def test_an_exception_a_view_raises_is_counted_by_type_and_view(client: Client) -> None:
    added = added_by(client, lambda: client.get("/explode"))

    assert added(prometheus.EXCEPTIONS_BY_TYPE, type="RuntimeError") == 1
    assert added(prometheus.EXCEPTIONS_BY_VIEW, view="explode") == 1
    assert added(prometheus.RESPONSES, status="500", view="explode", method="GET") == 1
    # Timed once (django-prometheus timed such a request twice).
    assert added(prometheus.LATENCY_COUNT, view="explode", method="GET") == 1


def test_a_path_no_route_takes_has_an_unnamed_view(client: Client) -> None:
    added = added_by(client, lambda: client.get("/nowhere"))

    assert added(prometheus.RESPONSES, status="404", view="<unnamed view>", method="GET") == 1
    assert added(prometheus.LATENCY_COUNT, view="<unnamed view>", method="GET") == 1


def test_made_up_methods_share_one_label(client: Client) -> None:
    added = added_by(client, lambda: client.generic("BREW", "/health/live"))

    assert (
        added(prometheus.RESPONSES, status="405", view="health-live", method="<invalid method>")
        == 1
    )
    assert added(prometheus.LATENCY_COUNT, view="health-live", method="<invalid method>") == 1


def test_probes_and_admin_pages_are_counted_too(client: Client) -> None:
    added = added_by(client, lambda: (client.get("/health/live"), client.get("/admin/login/")))

    assert added(prometheus.RESPONSES, status="200", view="health-live", method="GET") == 1
    assert added(prometheus.RESPONSES, status="200", view="admin:login", method="GET") == 1


def test_a_metric_that_cannot_be_written_fails_no_request(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As when the multiprocess directory is gone or the disk is full.
    def unwritable(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(metrics.RESPONSES_BY_STATUS_VIEW_METHOD, "labels", unwritable)
    monkeypatch.setattr(metrics, "_failure_logged", False)

    first, second = client.get("/health/live"), client.get("/health/live")

    assert first.status_code == second.status_code == 200
    logged = [r for r in caplog.records if r.name == "core.metrics"]
    assert len(logged) == 1  # once, not once a request
