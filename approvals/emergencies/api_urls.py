"""The emergency path's API, under /api/v1/emergencies/."""

from django.urls import path  # noqa: F401

app_name = "emergencies-api"

urlpatterns: list = []
