"""Mounted at /integrations/servicenow/ (the inbound endpoint)."""

from django.urls import path

from changes.servicenow import views

app_name = "servicenow"

urlpatterns = [
    path("", views.inbound, name="inbound"),
]
