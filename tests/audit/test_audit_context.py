"""Who and where an audit row comes from: bound per request, command, task or thread."""

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from accounts.models import Merchant
from accounts.services import merchant_create
from audit import context
from audit.context import ActorType, AuditContext, current_context
from audit.management import AuditedCommand
from audit.models import AuditLog
from ledger.holds import hold_create
from ledger.tasks import expire_holds
from tests.factories import AccountFactory

GENERATED_REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")


def _merchant_audit_row(merchant: Merchant) -> AuditLog:
    return AuditLog.objects.get(action="merchant.created", object_id=merchant.public_id)


# --- requests -------------------------------------------------------------------------------


def open_merchant(request: HttpRequest) -> HttpResponse:
    """A stand-in for any view that calls a service."""
    merchant = merchant_create(name=request.POST["name"])
    return HttpResponse(merchant.public_id)


def expire_due_holds(request: HttpRequest) -> HttpResponse:
    """A stand-in for a view that runs a task eagerly (CELERY_EAGER, the demo)."""
    return HttpResponse(str(expire_holds.apply().get()))


urlpatterns = [path("merchants/", open_merchant), path("expire/", expire_due_holds)]
via_test_view = pytest.mark.urls(__name__)


@pytest.mark.django_db
def test_the_clients_request_id_is_echoed_beside_ours(client: Client) -> None:
    response = client.get("/admin/login/", headers={"X-Request-Id": "req_from_client_42"})

    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])
    assert response["X-Client-Request-Id"] == "req_from_client_42"


@pytest.mark.django_db
def test_request_without_an_id_gets_a_generated_one(client: Client) -> None:
    response = client.get("/admin/login/")

    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])


@pytest.mark.django_db
def test_each_request_gets_its_own_generated_id(client: Client) -> None:
    first = client.get("/admin/login/")["X-Request-Id"]
    second = client.get("/admin/login/")["X-Request-Id"]

    assert first != second


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", ["x" * 201, "line\nbreak", "tab\there", "caf\u00e9"])
def test_an_unusable_client_request_id_is_dropped(client: Client, incoming: str) -> None:
    response = client.get("/admin/login/", headers={"X-Request-Id": incoming})

    assert GENERATED_REQUEST_ID.match(response["X-Request-Id"])
    assert "X-Client-Request-Id" not in response


@via_test_view
@pytest.mark.django_db
def test_audit_row_written_in_a_request_carries_its_id_ip_and_user_agent(
    client: Client,
) -> None:
    response = client.post(
        "/merchants/",
        {"name": "Acme"},
        headers={"X-Request-Id": "req_abc", "User-Agent": "ops-console/1.0"},
        REMOTE_ADDR="203.0.113.7",
    )

    row = _merchant_audit_row(Merchant.objects.get(public_id=response.content.decode()))
    assert (row.request_id, row.client_request_id, row.ip_address, row.user_agent) == (
        response["X-Request-Id"],
        "req_abc",
        "203.0.113.7",
        "ops-console/1.0",
    )


@via_test_view
@pytest.mark.django_db
def test_audit_row_written_in_a_request_carries_the_generated_id(client: Client) -> None:
    response = client.post("/merchants/", {"name": "Acme"})

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert row.request_id == response["X-Request-Id"]


@via_test_view
@pytest.mark.django_db
def test_logged_in_staff_user_is_the_actor(client: Client) -> None:
    staff = get_user_model().objects.create_user(username="olga", is_staff=True)
    client.force_login(staff)

    client.post("/merchants/", {"name": "Acme"})

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert (row.actor_type, row.actor) == (ActorType.STAFF, "olga")


@via_test_view
@pytest.mark.django_db
def test_logged_in_user_who_is_not_staff_is_not_the_actor(client: Client) -> None:
    client.force_login(get_user_model().objects.create_user(username="mallory"))

    client.post("/merchants/", {"name": "Acme"})

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert (row.actor_type, row.actor) == (ActorType.SYSTEM, "")


@via_test_view
@pytest.mark.django_db
def test_anonymous_request_has_no_named_actor(client: Client) -> None:
    client.post("/merchants/", {"name": "Acme"})

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert (row.actor_type, row.actor) == (ActorType.SYSTEM, "")


@via_test_view
@pytest.mark.django_db
def test_request_context_ends_with_the_request(client: Client) -> None:
    client.post("/merchants/", {"name": "Acme"}, headers={"X-Request-Id": "req_abc"})

    assert current_context() == AuditContext()


# --- bind() ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_service_called_inside_bind_is_audited_with_the_bound_fields() -> None:
    with context.bind(
        actor_type=ActorType.API_KEY,
        actor="key_123",
        request_id="req_bound",
        ip_address="198.51.100.1",
        user_agent="merchant-sdk/2",
    ):
        merchant = merchant_create(name="Acme")

    row = _merchant_audit_row(merchant)
    assert (row.actor_type, row.actor, row.request_id, row.ip_address, row.user_agent) == (
        ActorType.API_KEY,
        "key_123",
        "req_bound",
        "198.51.100.1",
        "merchant-sdk/2",
    )


@pytest.mark.django_db
def test_service_called_outside_any_binding_is_audited_as_the_system() -> None:
    row = _merchant_audit_row(merchant_create(name="Acme"))

    assert (row.actor_type, row.actor, row.request_id) == (ActorType.SYSTEM, "", "")


def test_nested_bind_overrides_only_what_it_names_and_restores_on_exit() -> None:
    with context.bind(actor_type=ActorType.STAFF, actor="olga", request_id="req_outer"):
        with context.bind(request_id="req_inner"):
            inner = current_context()
        outer = current_context()

    assert (inner.actor, inner.request_id) == ("olga", "req_inner")
    assert (outer.actor, outer.request_id) == ("olga", "req_outer")
    assert current_context() == AuditContext()


def test_only_a_bind_block_is_bound() -> None:
    assert not current_context().bound
    with context.bind(request_id="req_anonymous") as bound:
        assert bound.bound
        assert current_context().bound
    assert not current_context().bound


def test_rebind_changes_the_enclosing_binding_until_its_block_ends() -> None:
    with context.bind(request_id="req_api"):
        context.rebind(actor_type=ActorType.API_KEY, actor="key_123")
        rebound = current_context()

    assert (rebound.actor_type, rebound.actor, rebound.request_id) == (
        ActorType.API_KEY,
        "key_123",
        "req_api",
    )
    assert current_context() == AuditContext()


def test_rebind_outside_a_bind_block_is_refused() -> None:
    with pytest.raises(RuntimeError, match="outside a bind"):
        context.rebind(actor_type=ActorType.API_KEY, actor="key_123")

    assert current_context() == AuditContext()


def test_bind_restores_the_context_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), context.bind(actor="olga"):
        raise RuntimeError

    assert current_context() == AuditContext()


# --- management commands --------------------------------------------------------------------

# A command is named after its module; this one lives in the test module.
COMMAND_NAME = __name__.rsplit(".", 1)[-1]


class OpenMerchantCommand(AuditedCommand):
    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(merchant_create(name=options["name"]).public_id)


@pytest.mark.django_db
def test_command_is_the_actor_of_its_writes() -> None:
    call_command(OpenMerchantCommand(), name="Acme")

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert (row.actor_type, row.actor, row.request_id) == (
        ActorType.COMMAND,
        f"command:{COMMAND_NAME}",
        f"cmd:{COMMAND_NAME}",
    )


@pytest.mark.django_db
def test_command_actor_option_names_the_operator() -> None:
    call_command(OpenMerchantCommand(), name="Acme", actor="olga@example.com")

    row = _merchant_audit_row(Merchant.objects.get(name="Acme"))
    assert (row.actor_type, row.actor) == (ActorType.COMMAND, "olga@example.com")


@pytest.mark.django_db
def test_command_turns_a_domain_error_into_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"^invalid_request: name is required$"):
        call_command(OpenMerchantCommand(), name="  ")


@pytest.mark.django_db
def test_command_context_ends_with_the_command() -> None:
    call_command(OpenMerchantCommand(), name="Acme")

    assert current_context() == AuditContext()


# --- Celery tasks (run eagerly here; tests/ledger/test_expire_holds_worker.py uses Redis) ----


@pytest.fixture
def due_hold_id() -> str:
    account = AccountFactory.create(balance=1_000)
    past = timezone.now() - timedelta(minutes=1)
    return hold_create(account=account, amount=100, expires_at=past).public_id


@pytest.mark.django_db
def test_task_is_the_actor_of_its_writes(due_hold_id: str) -> None:
    result = expire_holds.apply()

    row = AuditLog.objects.get(action="hold.expired", object_id=due_hold_id)
    assert (row.actor_type, row.actor, row.request_id) == (
        ActorType.WORKER,
        "ledger.tasks.expire_holds",
        result.id,
    )
    assert current_context() == AuditContext()


@pytest.mark.django_db
def test_task_run_eagerly_inside_a_command_keeps_the_command_as_actor(due_hold_id: str) -> None:
    with context.bind(actor_type=ActorType.COMMAND, actor="command:expire_now"):
        expire_holds.apply()

    row = AuditLog.objects.get(action="hold.expired", object_id=due_hold_id)
    assert (row.actor_type, row.actor) == (ActorType.COMMAND, "command:expire_now")


@via_test_view
@pytest.mark.django_db
def test_task_run_eagerly_inside_an_anonymous_request_keeps_the_request_context(
    client: Client, due_hold_id: str
) -> None:
    response = client.get("/expire/", headers={"X-Request-Id": "req_anonymous"})

    assert response.content == b"1"
    row = AuditLog.objects.get(action="hold.expired", object_id=due_hold_id)
    assert (row.actor_type, row.actor, row.request_id, row.client_request_id) == (
        ActorType.SYSTEM,
        "",
        response["X-Request-Id"],
        "req_anonymous",
    )


# --- threads --------------------------------------------------------------------------------


def test_bindings_in_concurrent_threads_do_not_leak_into_each_other() -> None:
    both_bound = threading.Barrier(2, timeout=5)
    seen: dict[str, AuditContext] = {}

    def act_as(actor: str) -> None:
        with context.bind(actor_type=ActorType.STAFF, actor=actor, request_id=f"req_{actor}"):
            both_bound.wait()  # the other thread's binding is now in force too
            seen[actor] = current_context()

    threads = [threading.Thread(target=act_as, args=(name,)) for name in ("olga", "piotr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (seen["olga"].actor, seen["olga"].request_id) == ("olga", "req_olga")
    assert (seen["piotr"].actor, seen["piotr"].request_id) == ("piotr", "req_piotr")
    assert current_context() == AuditContext()


def test_new_thread_does_not_inherit_the_starting_threads_binding() -> None:
    seen: list[AuditContext] = []
    with context.bind(actor_type=ActorType.STAFF, actor="olga"):
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()

    assert seen == [AuditContext()]


@pytest.mark.django_db(transaction=True)
def test_audit_rows_written_by_concurrent_threads_carry_their_own_actor() -> None:
    both_bound = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def open_merchant_as(actor: str) -> None:
        try:
            with context.bind(actor_type=ActorType.STAFF, actor=actor):
                both_bound.wait()
                merchant_create(name=f"Opened by {actor}")
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=open_merchant_as, args=(name,)) for name in ("olga", "piotr")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    actors = dict(
        AuditLog.objects.filter(action="merchant.created").values_list("new_values__name", "actor")
    )
    assert actors == {"Opened by olga": "olga", "Opened by piotr": "piotr"}
