"""Verification endpoints of the pipeline API, mounted under /api/v1/ by config/urls.py."""

from django.urls import path

from approvals.verification import api

urlpatterns = [
    path(
        "releases/<int:pk>/deployments/<int:deployment_id>/health/",
        api.DeploymentHealth.as_view(),
        name="deployment-health",
    ),
]
