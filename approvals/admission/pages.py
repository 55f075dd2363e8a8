"""Mounted at /approvals/integrations/clusters/: the administrators' Kubernetes clusters."""

from django.urls import path

from approvals.admission import views

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list, name="cluster_list"),
    path("<slug:cluster>/", views.cluster_edit, name="cluster_edit"),
]
