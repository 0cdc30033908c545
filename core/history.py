"""simple-history's record of who changed a row: a staff user, or nobody. API keys,
workers and commands are named in the audit log instead."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser


def history_user(request: Any = None, **kwargs: Any) -> AbstractBaseUser | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) else None
