"""CI integrations under /integrations/: Azure DevOps checks and the signoff-gate client."""

from django.urls import path

from approvals.pipelines import ci_views

app_name = "ci"

urlpatterns = [
    path("azure/check", ci_views.AzureCheck.as_view(), name="azure_check"),
    path(
        "azure/releases/<int:pk>/check", ci_views.AzureCheck.as_view(), name="azure_release_check"
    ),
    path("azure/gate", ci_views.AzureGate.as_view(), name="azure_gate"),
    path("signoff-gate", ci_views.client_download, name="client_download"),
]
