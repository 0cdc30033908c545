"""Reading /metrics in tests: the samples of the page, by name and labels."""

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

RESPONSES = "django_http_responses_total_by_status_view_method_total"
LATENCY_COUNT = "django_http_requests_latency_seconds_by_view_method_count"
LATENCY_SUM = "django_http_requests_latency_seconds_by_view_method_sum"
LATENCY_BUCKET = "django_http_requests_latency_seconds_by_view_method_bucket"
EXCEPTIONS_BY_TYPE = "django_http_exceptions_total_by_type_total"
EXCEPTIONS_BY_VIEW = "django_http_exceptions_total_by_view_total"


def parse(body: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not there (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
