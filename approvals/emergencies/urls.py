"""Declaring and following emergencies, under /approvals/emergencies/."""

from django.urls import path  # noqa: F401

app_name = "emergencies"

urlpatterns: list = []
