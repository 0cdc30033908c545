from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC. Python accepts UTC offsets up to ±23:59 and
    PostgreSQL only up to ±15:59: passed on as given, `+20:46` would be a database error
    (a 500), not a bad parameter."""

    def to_python(self, value: Any) -> datetime | None:
        parsed: datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as error:  # e.g. 0001-01-01T00:00:00+01:00
            raise forms.ValidationError("Datetime out of range.", code="invalid") from error


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class CurrencyFilter(django_filters.CharFilter):
    """An ISO 4217 code in any case, as the API accepts currencies everywhere."""

    def filter(self, qs: Any, value: Any) -> Any:
        return super().filter(qs, value.upper() if isinstance(value, str) else value)


class CreatedFilterSet(django_filters.FilterSet):
    """`created_after` / `created_before` (ISO 8601), on every list."""

    created_after = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Only objects created at or after this time (ISO 8601).",
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        help_text="Only objects created before this time (ISO 8601).",
    )
