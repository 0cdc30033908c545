from rest_framework.pagination import CursorPagination


class NewestFirstPagination(CursorPagination):
    """`results`, `next`, `previous`; newest first; `page_size` up to 100."""

    ordering = "-id"  # ids grow with creation and are unique: a stable cursor
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
