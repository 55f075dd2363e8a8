"""Mounted under /api/v1/."""

from django.urls import path

from changes.records import api

app_name = "changes-api"

urlpatterns = [
    path("changes/", api.ChangeListCreate.as_view(), name="change-list"),
    path("changes/<str:ref>/", api.ChangeDetail.as_view(), name="change-detail"),
    path("changes/<str:ref>/moves/", api.ChangeMove.as_view(), name="change-move"),
]
