"""The CAB's pages under /cab/: its queue, meetings and agendas."""

from django.urls import path  # noqa: F401

app_name = "cab"

urlpatterns: list = []
