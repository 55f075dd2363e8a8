from django.urls import path

from approvals.api import explain, infrastructure, views

app_name = "approvals-api"

urlpatterns = [
    path("releases/", views.ReleaseListCreate.as_view(), name="release-list"),
    path("releases/<int:pk>/", views.ReleaseDetail.as_view(), name="release-detail"),
    path("releases/<int:pk>/gate", views.ReleaseGate.as_view(), name="release-gate"),
    path("releases/<int:pk>/explain", explain.ReleaseExplain.as_view(), name="release-explain"),
    path("releases/<int:pk>/evidence/", views.ReleaseEvidence.as_view(), name="release-evidence"),
    path(
        "releases/<int:pk>/decisions/", views.ReleaseDecisions.as_view(), name="release-decisions"
    ),
    path(
        "releases/<int:pk>/decisions/revoke/",
        views.ReleaseDecisionRevoke.as_view(),
        name="release-decision-revoke",
    ),
    path("releases/<int:pk>/withdraw/", views.ReleaseWithdraw.as_view(), name="release-withdraw"),
    path(
        "releases/<int:pk>/request-again/",
        views.ReleaseRequestAgain.as_view(),
        name="release-request-again",
    ),
    path(
        "releases/<int:pk>/iac-plan/",
        infrastructure.ReleaseInfrastructurePlan.as_view(),
        name="release-iac-plan",
    ),
    path(
        "releases/<int:pk>/deployments/",
        views.ReleaseDeployments.as_view(),
        name="release-deployments",
    ),
]
