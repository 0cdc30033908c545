"""The audit trail of staff accounts and their rights (SPEC §3, Audit): every change of a
user or a group, every grant or withdrawal of a group or a permission (the many-to-many
changes Django's admin log does not record as such), every login and failed login.

Each row is written by a signal receiver inside the transaction that makes the change (the
admin's, a command's), so the change and its record commit together, with the acting staff
user, command or worker as the actor (audit.context). Passwords are never recorded: a row
says only that one changed.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.http import HttpRequest

from audit import context
from audit.context import ActorType
from audit.services import audit_log_record

User = get_user_model()
# What a user row says about who may do what; the password is recorded as changed or not.
USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
)
_BEFORE = "_audit_values_before"
_CLEARED = "_audit_cleared_pks"
_PASSWORD_CHANGED = "_audit_password_changed"  # noqa: S105 - an attribute name


def _user_values(user: Any) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


def _user_before_save(instance: Any, **_: Any) -> None:
    if instance._state.adding or instance.pk is None:
        return
    stored = User._default_manager.filter(pk=instance.pk).first()
    if stored is None:
        return
    setattr(instance, _BEFORE, _user_values(stored))
    setattr(instance, _PASSWORD_CHANGED, stored.password != instance.password)


def _user_saved(instance: Any, created: bool, update_fields: Any = None, **_: Any) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login, audited as one
    new = _user_values(instance)
    if created:
        audit_log_record(
            action="user.created",
            object_type="user",
            object_id=instance.get_username(),
            new_values=new,
        )
        return
    old = dict(getattr(instance, _BEFORE, {}))
    if getattr(instance, _PASSWORD_CHANGED, False):
        old["password"], new["password"] = "(previous)", "(changed)"
    if old == new:
        return
    audit_log_record(
        action="user.updated",
        object_type="user",
        object_id=old.get("username") or instance.get_username(),
        old_values=old,
        new_values=new,
    )


def _user_deleted(instance: Any, **_: Any) -> None:
    audit_log_record(
        action="user.deleted",
        object_type="user",
        object_id=instance.get_username(),
        old_values=_user_values(instance),
    )


def _group_before_save(instance: Group, **_: Any) -> None:
    if instance.pk is not None:
        setattr(instance, _BEFORE, Group.objects.filter(pk=instance.pk).values("name").first())


def _group_saved(instance: Group, created: bool, **_: Any) -> None:
    old = {} if created else dict(getattr(instance, _BEFORE, None) or {})
    if old == {"name": instance.name}:
        return
    audit_log_record(
        action="group.created" if created else "group.updated",
        object_type="group",
        object_id=instance.name,
        old_values=old,
        new_values={"name": instance.name},
    )


def _group_before_delete(instance: Group, **_: Any) -> None:
    # Deleting a group takes its rights from its members without an m2m signal: note whom.
    setattr(
        instance,
        _BEFORE,
        {
            "name": instance.name,
            "members": sorted(instance.user_set.values_list("username", flat=True)),
            "permissions": sorted(_permission_label(p) for p in instance.permissions.all()),
        },
    )


def _group_deleted(instance: Group, **_: Any) -> None:
    audit_log_record(
        action="group.deleted",
        object_type="group",
        object_id=instance.name,
        old_values=getattr(instance, _BEFORE, {"name": instance.name}),
    )


def _permission_label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


# For each many-to-many relation: who holds it, what it grants, and how a grant is named.
_RELATIONS: dict[Any, tuple[str, str, Any]] = {}


def _rights_changed(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **_: Any
) -> None:
    """A group or permission granted to or withdrawn from a user, or a permission from a
    group (from either side of the relation). `pre_clear` notes what a clear takes."""
    holder_type, field, label = _RELATIONS[sender]
    if action == "pre_clear":
        # Django names no pks when a relation is cleared: note them before they go.
        related = getattr(instance, field) if not reverse else _reverse_manager(instance, sender)
        instance.__dict__[_CLEARED] = set(related.values_list("pk", flat=True))
        return
    if action == "post_clear":
        pk_set = instance.__dict__.pop(_CLEARED, set())
        action = "post_remove"
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    verb = "granted" if action == "post_add" else "withdrawn"
    if reverse:
        # `instance` is the group or permission; `model` the holders it was given to.
        granted = label(instance)
        for holder in model._default_manager.filter(pk__in=pk_set):
            _record_grant(holder_type, holder, field, verb, [granted])
    else:
        granted_model = getattr(type(instance), field).field.related_model
        names = sorted(label(item) for item in granted_model._default_manager.filter(pk__in=pk_set))
        _record_grant(holder_type, instance, field, verb, names)


def _reverse_manager(instance: Any, through: Any) -> Any:
    """The manager of `instance`'s holders across `through` (group.user_set, …)."""
    for relation in type(instance)._meta.related_objects:
        if getattr(relation, "through", None) is through:
            return getattr(instance, relation.get_accessor_name())
    raise LookupError(through)


def _record_grant(holder_type: str, holder: Any, field: str, verb: str, names: list[str]) -> None:
    object_id = holder.get_username() if holder_type == "user" else holder.name
    audit_log_record(
        action=f"{holder_type}.{field}_{verb}",
        object_type=holder_type,
        object_id=object_id,
        new_values={field: names},
    )


def _logged_in(request: HttpRequest, user: Any, **_: Any) -> None:
    # The request's context was bound before the login: the actor is the user now.
    with context.bind(actor_type=ActorType.STAFF, actor=user.get_username()):
        audit_log_record(
            action="staff.logged_in", object_type="user", object_id=user.get_username()
        )


def _login_failed(
    credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    # Django has already masked the password in `credentials`; only the name is kept.
    attempted = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    audit_log_record(
        action="staff.login_failed",
        object_type="user",
        object_id=attempted[:255],
        new_values={"username": attempted[:150]},
    )


def connect() -> None:
    """Connect the receivers (AuditConfig.ready)."""
    _RELATIONS.update(
        {
            User.groups.through: ("user", "groups", lambda group: group.name),
            User.user_permissions.through: ("user", "user_permissions", _permission_label),
            Group.permissions.through: ("group", "permissions", _permission_label),
        }
    )
    pre_save.connect(_user_before_save, sender=User, dispatch_uid="audit_user_before_save")
    post_save.connect(_user_saved, sender=User, dispatch_uid="audit_user_saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="audit_user_deleted")
    pre_save.connect(_group_before_save, sender=Group, dispatch_uid="audit_group_before_save")
    post_save.connect(_group_saved, sender=Group, dispatch_uid="audit_group_saved")
    pre_delete.connect(_group_before_delete, sender=Group, dispatch_uid="audit_group_before_delete")
    post_delete.connect(_group_deleted, sender=Group, dispatch_uid="audit_group_deleted")
    for through in _RELATIONS:
        m2m_changed.connect(
            _rights_changed, sender=through, dispatch_uid=f"audit_rights_{through.__name__}"
        )
    user_logged_in.connect(_logged_in, dispatch_uid="audit_logged_in")
    user_login_failed.connect(_login_failed, dispatch_uid="audit_login_failed")
