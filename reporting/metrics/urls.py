"""The metrics pages, mounted at /metrics/ in the `reporting` namespace."""

from django.urls import path

from reporting.metrics import views

urlpatterns = [
    path("", views.metrics_home, name="metrics"),
    path("releases/", views.release_managers, name="metrics_release_managers"),
    path("cab/", views.cab, name="metrics_cab"),
    path("administration/", views.administration, name="metrics_administration"),
]
