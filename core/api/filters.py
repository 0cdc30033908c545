import django_filters


class CreatedFilterSet(django_filters.FilterSet):
    """`created_after` / `created_before` (ISO 8601), on every list."""

    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
