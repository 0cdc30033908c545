"""Strict input fields: JSON integers only for amounts, ISO 4217 currencies, bounded
metadata and text. Nothing is coerced: a float, a numeric string or a boolean is an error."""

import re
from collections.abc import Callable
from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from core.amounts import MAX_AMOUNT
from core.api.principal import Principal
from core.currencies import normalize_currency
from core.db import select_many
from core.exceptions import DomainError, NotFound, ValidationError
from core.validation import validate_metadata, validate_text

# Text fields declared without a max_length still have one.
API_TEXT_MAX_LENGTH = 10_000
# The shape of a public id (`acct_` + base62, core.ids); anything else names no object.
PUBLIC_ID = re.compile(r"[0-9A-Za-z_]{1,64}")


def foreign_object_check(
    request: Request, model: type[Model], public_id: str, *, param: str | None
) -> None:
    """RELIABILITY B8: the caller's lookup of `public_id` found nothing, and is about to
    answer 404. When the object exists but is not the caller's (another merchant's, or a
    platform system account), note the denied attempt, written after the response. One
    query, the same for a missing id, so the answer takes no longer for a foreign one."""
    principal = request.user
    if not isinstance(principal, Principal):
        return
    # Not the caller's own (one left out by a filter or by `only`): that is no attempt.
    foreign = model._default_manager.filter(public_id=public_id).exclude(
        merchant_id=principal.merchant.pk
    )
    if not foreign.exists():
        return
    principal.foreign_object_denied(
        request._request,
        method=request.method or "",
        path=request.path,
        public_id=public_id,
        param=param,
    )


def _field_error(check: Callable[..., Any], value: Any, **kwargs: Any) -> Any:
    """Run one of core.validation's rules, its refusal as this field's error."""
    try:
        return check(value, **kwargs)
    except DomainError as error:
        raise serializers.ValidationError(error.message, code="invalid") from error


class TextField(serializers.CharField):
    """A string as sent (not trimmed), without NUL or lone surrogates."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        max_length = self.max_length or API_TEXT_MAX_LENGTH
        return str(_field_error(validate_text, data, param=self.field_name, max_length=max_length))


class AmountField(serializers.IntegerField):
    """A positive JSON integer of minor units, at most MAX_AMOUNT."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_AMOUNT)
        kwargs.setdefault("help_text", f"Minor units of the currency, 1 to {MAX_AMOUNT}.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            raise serializers.ValidationError(
                "must be a JSON integer of minor units", code="invalid"
            )
        return int(super().to_internal_value(data))


class ChoiceField(serializers.ChoiceField):
    """One of `choices`. A refusal names the choices and does not echo the input (DRF's
    does, and a lone surrogate in it cannot be written as UTF-8: a 500)."""

    def __init__(self, *, choices: list[str], **kwargs: Any):
        kwargs.setdefault(
            "error_messages", {"invalid_choice": f"must be one of {', '.join(choices)}"}
        )
        super().__init__(choices=choices, **kwargs)


class CurrencyField(serializers.CharField):
    """An ISO 4217 code, accepted in any case, returned upper case."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("help_text", "ISO 4217 currency code, e.g. usd or USD.")
        super().__init__(max_length=3, min_length=3, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string", code="invalid")
        try:
            return normalize_currency(data)
        except DomainError as error:
            raise serializers.ValidationError(error.message, code="invalid_currency") from error


class MetadataField(serializers.DictField):
    """Up to 20 string keys (≤ 40 characters) with string values (≤ 500 characters)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        kwargs.setdefault("child", serializers.CharField(allow_blank=True))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        return dict(_field_error(validate_metadata, data, param=self.field_name))


class MerchantObjectField(serializers.SlugRelatedField):
    """An id (`acct_…`) of one of the caller's own `model` objects (those whose fields
    equal `only`, e.g. wallets). Another merchant's id is exactly as unknown as a missing
    one: 404, naming the parameter (or, given `unknown_code`, a 400 with that code: for an
    object that is an input to the request rather than its subject, such as an FX quote).
    Declared on a `StrictSerializer`, which looks up the ids of a body together."""

    def __init__(
        self,
        model: type[Model],
        *,
        only: dict[str, Any] | None = None,
        unknown_code: str | None = None,
        **kwargs: Any,
    ):
        self.model, self.only = model, dict(only or {})
        self.unknown_code = unknown_code
        # DRF builds the field again for every request's serializer: the queryset (for the
        # schema and DRF's own checks) is filtered only when asked for.
        super().__init__(slug_field="public_id", queryset=model._default_manager.all(), **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        assert queryset is not None  # noqa: S101 - declared with queryset=
        return queryset.filter(merchant=self.context["request"].user.merchant, **self.only)

    def to_internal_value(self, data: Any) -> Model:
        if not isinstance(data, str):
            raise serializers.ValidationError("must be an id string", code="invalid")
        if not PUBLIC_ID.fullmatch(data):  # e.g. a NUL or a lone surrogate: no such object
            raise self._unknown("No such object.")
        parent = self.parent
        assert isinstance(parent, StrictSerializer)  # noqa: S101 - see the docstring
        found = parent.merchant_objects.get(str(self.field_name))
        if found is None:
            foreign_object_check(self.context["request"], self.model, data, param=self.field_name)
            raise self._unknown(f"No such object: {data!r}")
        return found

    def _unknown(self, message: str) -> DomainError:
        if self.unknown_code is not None:
            return ValidationError(message, code=self.unknown_code, param=self.field_name)
        return NotFound(message, code="resource_missing", param=self.field_name)

    def to_representation(self, value: Any) -> str:
        return str(value.public_id)


def _not_an_object() -> serializers.ValidationError:
    return serializers.ValidationError(
        {"non_field_errors": ["the body must be a JSON object"]}, code="invalid"
    )


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know (mass assignment of
    `status`, `merchant`, … is an error, not silently ignored)."""

    merchant_objects: dict[str, Model]

    def run_validation(self, data: Any = empty) -> Any:
        if data is None:  # a JSON `null` body: DRF would answer "No data provided"
            raise _not_an_object()
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise _not_an_object()
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: ["unknown parameter"]}, code="parameter_unknown"
            )
        self.merchant_objects = self._merchant_objects_named(data)
        return super().to_internal_value(data)

    def _merchant_objects_named(self, data: dict[str, Any]) -> dict[str, Model]:
        """The caller's objects the body's `MerchantObjectField`s name, by field: one
        written-out query per kind of object, so a transfer's two accounts cost one round
        trip (docs/benchmarks.md). A field whose object is missing is left out; the field
        refuses it, in its turn."""
        named: dict[tuple[type[Model], tuple[tuple[str, Any], ...]], dict[str, str]] = {}
        for name, field in self.fields.items():
            value = data.get(name)
            if (
                isinstance(field, MerchantObjectField)
                and isinstance(value, str)
                and PUBLIC_ID.fullmatch(value)
            ):
                named.setdefault((field.model, tuple(field.only.items())), {})[name] = value
        found: dict[str, Model] = {}
        for (model, only), ids in named.items():
            objects = select_many(
                model,
                "public_id",
                list(ids.values()),
                merchant_id=self.context["request"].user.merchant.pk,
                **dict(only),
            )
            found.update({name: objects[key] for name, key in ids.items() if key in objects})
        return found
