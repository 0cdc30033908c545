from rest_framework import mixins

from audit.api.filters import EventTypeFilter
from audit.api.serializers import EventOutput
from audit.models import Event
from core.api.filters import CreatedFilterSet
from core.api.views import MerchantScopedViewSet


class EventFilter(CreatedFilterSet):
    type = EventTypeFilter(
        field_name="type",
        help_text="Only events of this type, e.g. `payment.failed`, or of this family, "
        "e.g. `payment.*`.",
    )

    class Meta:
        model = Event
        fields: list[str] = []


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, MerchantScopedViewSet):
    queryset = Event.objects.all()
    serializer_class = EventOutput
    filterset_class = EventFilter
