"""Mounted at /integrations/servicenow/ (the inbound endpoint)."""

urlpatterns: list = []
