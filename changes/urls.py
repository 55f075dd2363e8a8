"""The changes app's pages, one include per concern, under /changes/."""

from django.urls import include, path

app_name = "changes"

urlpatterns = [
    path("", include("changes.records.urls")),
    path("", include("changes.freezes.urls")),
    path("", include("changes.calendar.urls")),
    path("reviews/", include("changes.reviews.urls")),
]
