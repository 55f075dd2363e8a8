"""Mounted under /api/v1/."""

urlpatterns: list = []
