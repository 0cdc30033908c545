from typing import Any

import django_filters
from django_filters.constants import EMPTY_VALUES


class EventTypeFilter(django_filters.CharFilter):
    """An event type: exact (`payment.failed`), or a family (`payment.*`)."""

    def filter(self, qs: Any, value: Any) -> Any:
        if value in EMPTY_VALUES:
            return qs
        if value.endswith(".*"):
            return qs.filter(**{f"{self.field_name}__startswith": value[:-1]})
        return qs.filter(**{self.field_name: value})
