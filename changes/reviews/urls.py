"""Post-implementation reviews and post-mortems, under /changes/reviews/."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
