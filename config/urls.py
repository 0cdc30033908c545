from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
]

handler404 = "core.api.errors.not_found_view"
handler500 = "core.api.errors.server_error_view"
