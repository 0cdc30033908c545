"""B18: schemathesis over the whole OpenAPI schema, in-process and authenticated.

The schema is the one the app serves at /api/v1/schema/; every operation in it is called
with generated requests (valid and invalid ones) through the WSGI application, with a real
API key of a merchant that has a funded account, a customer, a transfer and events. Each
response must be no server error and must agree with the schema: a documented status code,
its content type, its body and its headers. The ledger's invariants hold afterwards.

Generated ids name nothing, so some cases (chosen from the generated data, so that
Hypothesis can replay them) name the merchant's real objects instead, in the path and in
the body, to reach the success paths too.
"""

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys import api_key_create
from audit.models import Event
from config.wsgi import application
from core.amounts import MAX_AMOUNT
from payments.attempts import attempt_result_apply
from payments.payments import payment_create
from payments.payouts import payout_create
from payments.providers.base import ProviderResult, ResultStatus
from payments.refunds import refund_create
from payments.services import transfer_create
from tests.api.helpers import ApiClient, assert_error
from tests.factories import AccountFactory, CustomerFactory, MerchantFactory
from tests.invariants import invariant_violations

SCHEMA_PATH = "/api/v1/schema/"
MAX_EXAMPLES = 25
STATEFUL_SCENARIOS = 15

schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)
schema.config.generation.update(database="none")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass(frozen=True)
class World:
    """One merchant's objects that generated requests may name."""

    secret: str
    ids: dict[str, str]  # path segment (`accounts`) → an id of that resource
    body: dict[str, Any]  # body field → a value that names a real object (or is valid)


@pytest.fixture
def world(settings: Any) -> World:
    # Hundreds of requests a second from one key: rate limiting would answer most of them
    # with 429 (documented, but then nothing else is exercised).
    settings.API_RATE_LIMIT = "off"
    merchant = MerchantFactory.create()
    _, secret = api_key_create(merchant=merchant, name="schemathesis")
    customer = CustomerFactory.create(merchant=merchant)
    funded = AccountFactory.create(merchant=merchant, customer=customer, balance=1_000_000)
    other = AccountFactory.create(merchant=merchant)
    transfer = transfer_create(merchant=merchant, source=funded, destination=other, amount=100)
    # A manual-capture payment the provider authorized: capture and cancel can succeed.
    payment = payment_create(
        merchant=merchant,
        destination=other,
        amount=5_000,
        currency="USD",
        payment_method="pm_card_visa",
        capture_method="manual",
    )
    attempt_result_apply(
        attempt_id=payment.attempts.get().pk,
        result=ProviderResult(status=ResultStatus.REQUIRES_CAPTURE, reference="pi_world"),
    )
    # A captured payment (refunds can be admitted), a refund of it and a payout.
    paid = payment_create(
        merchant=merchant,
        destination=other,
        amount=5_000,
        currency="USD",
        payment_method="pm_card_visa",
    )
    attempt_result_apply(
        attempt_id=paid.attempts.get().pk,
        result=ProviderResult(
            status=ResultStatus.SUCCEEDED,
            reference="pi_world_paid",
            amount=5_000,
            currency="USD",
            amount_captured=5_000,
        ),
    )
    refund = refund_create(merchant=merchant, payment=paid, amount=100)
    payout = payout_create(
        merchant=merchant, source=funded, amount=100, currency="USD", destination="ba_ok"
    )
    event = Event.objects.filter(merchant=merchant).latest("id")
    return World(
        secret=secret,
        ids={
            "customers": customer.public_id,
            "accounts": funded.public_id,
            "transfers": transfer.public_id,
            "payments": payment.public_id,
            "refunds": refund.public_id,
            "payouts": payout.public_id,
            "events": event.public_id,
        },
        body={
            "customer": customer.public_id,
            "source_account": funded.public_id,
            "destination_account": other.public_id,
            "account": funded.public_id,
            "payment": paid.public_id,
            "destination": "ba_ok",
            "currency": "usd",
        },
    )


def _pick(value: Any) -> bool:
    """A stable coin toss on generated data: about two cases in three use real objects."""
    return zlib.crc32(repr(value).encode("utf-8", "surrogatepass")) % 3 != 0


def _use_real_objects(case: schemathesis.Case, world: World, *, in_path: bool = True) -> None:
    path_parameters = case.path_parameters or {}
    if in_path and "id" in path_parameters and _pick(path_parameters["id"]):
        resource = case.operation.path.removeprefix("/api/v1/").split("/")[0]
        if resource in world.ids:
            path_parameters["id"] = world.ids[resource]
    if isinstance(case.body, dict) and _pick(case.body):
        for name, value in world.body.items():
            if name in case.body:
                case.body[name] = value


@pytest.fixture(autouse=True)
def invariants_hold_afterwards(db: None) -> Iterator[None]:
    yield
    assert invariant_violations() == {}


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, world: World) -> None:
    _use_real_objects(case, world)
    case.call_and_validate(headers={"Authorization": f"Bearer {world.secret}"}, checks=CHECKS)


@pytest.mark.django_db(transaction=True)
def test_api_workflows_conform_to_its_schema(world: World) -> None:
    """Stateful: sequences of calls that feed one response's ids into the next request,
    along the links schemathesis infers (create or list, then retrieve, balance, entries)."""
    headers = {"Authorization": f"Bearer {world.secret}"}

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            _use_real_objects(case, world, in_path=False)  # path ids come from the links

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    Workflow.run(
        settings=hypothesis_settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )


def test_schema_is_valid_without_warnings(tmp_path: Any) -> None:
    """`manage.py spectacular --validate --fail-on-warn` passes: the schema is valid
    OpenAPI 3 and drf-spectacular could resolve every view and field."""
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )


@pytest.mark.parametrize(
    "created_after",
    [
        "2048-05-13T06:13:25.5+20:46",  # beyond PostgreSQL's ±15:59: was a 500
        "2024-01-01T00:00:00-23:59",
    ],
)
def test_created_filters_take_any_utc_offset_python_parses(
    api: ApiClient, created_after: str
) -> None:
    """Found by this fuzzing: a UTC offset Python accepts and PostgreSQL does not."""
    for path in ("customers", "accounts", "transfers", "payments", "events"):
        response = api.get(path, {"created_after": created_after})
        assert response.status_code == 200, (path, response.content)


@pytest.mark.parametrize(
    "created_before", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_created_filters_out_of_range_in_utc_are_400(api: ApiClient, created_before: str) -> None:
    response = api.get("transfers", {"created_before": created_before})
    assert_error(response, 400, "invalid_request_error", param="created_before")


def test_schema_documents_every_operation_fully() -> None:
    """Every operation: an id, a tag, the bearer scheme, its errors with the one `Error`
    body; request bodies refuse unknown fields; amounts are bounded integers."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    components = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A merchant's API key",
    }
    assert set(components["ErrorDetail"]["required"]) == {"type", "code", "message", "param"}
    operation_ids = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            label = f"{method.upper()} {path}"
            operation_ids.append(operation["operationId"])
            assert operation["tags"], label
            assert operation["security"] == [{"ApiKey": []}], label
            responses = operation["responses"]
            assert {"401", "429"} <= set(responses), label
            for status, response in responses.items():
                if status >= "400":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (label, status)
            if "{id}" in path:
                assert "404" in responses, label
            if method == "post":
                assert {"400", "403"} <= set(responses), label
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                component = components[body["$ref"].rsplit("/", 1)[1]]
                assert component["additionalProperties"] is False, label
                amount = component.get("properties", {}).get("amount")
                if amount is not None:
                    assert amount["type"] == "integer", label
                    assert (amount["minimum"], amount["maximum"]) == (1, MAX_AMOUNT), label
    assert len(operation_ids) == len(set(operation_ids))
    transfer = components["TransferOutput"]["properties"]
    assert transfer["failure_code"]["nullable"] is True
    assert transfer["created"] == {"type": "string", "format": "date-time"}
    assert components["AccountOutput"]["properties"]["customer"]["nullable"] is True
