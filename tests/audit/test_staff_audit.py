"""Every change of staff users, groups and permissions, and every login and failed login,
lands in the audit log with the acting staff user (issue 8, point 6)."""

import io
import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client

from audit.models import AuditLog

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-staff-password-1"  # noqa: S105 - a test user's


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("chief", "chief@example.com", PASSWORD))
    return client


def rows(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def no_password_anywhere() -> None:
    for row in AuditLog.objects.all():
        text = json.dumps([row.old_values, row.new_values, row.reason])
        assert PASSWORD not in text and "pbkdf2" not in text, row.action


def test_a_staff_user_created_in_the_admin_is_audited_with_the_creator(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newhire",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "usable_password": "true",
        },
    )

    assert response.status_code == 302, response.content[:500]
    (row,) = [row for row in rows("user.created") if row.object_id == "newhire"]
    assert row.object_type == "user"
    assert (row.actor_type, row.actor) == ("staff", "chief")
    assert row.new_values["is_superuser"] is False
    no_password_anywhere()


def test_granting_superuser_and_groups_in_the_admin_is_audited(admin_client: Client) -> None:
    user = User.objects.create_user("ops1", password=PASSWORD, is_staff=True)
    finance = Group.objects.create(name="finance")

    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": "ops1",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [finance.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    (updated,) = rows("user.updated")
    assert (updated.actor_type, updated.actor, updated.object_id) == ("staff", "chief", "ops1")
    assert "is_superuser" in updated.changed_fields
    assert (updated.old_values["is_superuser"], updated.new_values["is_superuser"]) == (False, True)
    (granted,) = rows("user.groups_granted")
    assert (granted.object_id, granted.new_values, granted.actor) == (
        "ops1",
        {"groups": ["finance"]},
        "chief",
    )


def test_permissions_of_a_user_and_a_group_are_audited_both_ways() -> None:
    user = User.objects.create_user("auditor1", password=PASSWORD)
    group = Group.objects.create(name="auditor")
    view = Permission.objects.get(codename="view_auditlog")

    user.user_permissions.add(view)
    group.permissions.add(view)
    view.group_set.remove(group)  # from the permission's side
    user.user_permissions.clear()

    assert [(r.object_id, r.new_values) for r in rows("user.user_permissions_granted")] == [
        ("auditor1", {"user_permissions": ["audit.view_auditlog"]})
    ]
    assert [r.object_id for r in rows("group.permissions_granted")] == ["auditor"]
    assert [r.object_id for r in rows("group.permissions_withdrawn")] == ["auditor"]
    assert [(r.object_id, r.new_values) for r in rows("user.user_permissions_withdrawn")] == [
        ("auditor1", {"user_permissions": ["audit.view_auditlog"]})
    ]


def test_groups_are_audited_when_created_renamed_and_deleted() -> None:
    group = Group.objects.create(name="operator")
    group.name = "operators"
    group.save()
    group.delete()

    assert [
        (r.action, r.old_values, r.new_values)
        for r in AuditLog.objects.filter(object_type="group").order_by("id")
    ] == [
        ("group.created", {}, {"name": "operator"}),
        ("group.updated", {"name": "operator"}, {"name": "operators"}),
        ("group.deleted", {"name": "operators", "members": [], "permissions": []}, {}),
    ]


def test_a_login_and_a_failed_login_are_audited() -> None:
    User.objects.create_user("ops2", password=PASSWORD, is_staff=True)
    client = Client()

    client.post("/admin/login/", {"username": "ops2", "password": "wrong password"})
    client.post("/admin/login/", {"username": "ops2", "password": PASSWORD})

    (failed,) = rows("staff.login_failed")
    assert (failed.object_id, failed.actor_type, failed.ip_address) == (
        "ops2",
        "system",
        "127.0.0.1",
    )
    (logged_in,) = rows("staff.logged_in")
    assert (logged_in.object_id, logged_in.actor_type, logged_in.actor) == ("ops2", "staff", "ops2")
    assert not rows("user.updated")  # last_login is the login's, not a change of the user
    no_password_anywhere()


def test_seed_demo_resetting_the_admin_password_is_audited() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())

    (created,) = rows("user.created")
    assert (created.object_id, created.actor) == ("admin", "command:seed_demo")
    reset = rows("user.updated")[-1]
    assert reset.new_values["password"] == "(changed)"  # noqa: S105 - the marker, no password
    assert reset.actor == "command:seed_demo"
    no_password_anywhere()


def test_a_user_and_a_group_with_the_longest_names_are_audited() -> None:
    # Django allows 150 characters for both; the audit row must not make their save fail.
    user = User.objects.create_user("u" * 150, password=PASSWORD)
    group = Group.objects.create(name="g" * 150)
    user.groups.add(group)

    assert AuditLog.objects.filter(action="user.created", object_id="u" * 150).exists()
    assert AuditLog.objects.filter(action="group.created", object_id="g" * 150).exists()
    assert AuditLog.objects.filter(action="user.groups_granted", object_id="u" * 150).exists()


def test_deleting_a_group_records_whom_it_gave_which_rights() -> None:
    group = Group.objects.create(name="finance")
    group.permissions.add(Permission.objects.get(codename="view_auditlog"))
    group.user_set.add(User.objects.create_user("fin1", password=PASSWORD))

    group.delete()

    (row,) = rows("group.deleted")
    assert row.old_values == {
        "name": "finance",
        "members": ["fin1"],
        "permissions": ["audit.view_auditlog"],
    }
