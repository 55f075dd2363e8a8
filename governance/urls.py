"""Governance pages under /governance/: each concern serves its own URLs, one namespace."""

from django.urls import include, path

app_name = "governance"

urlpatterns = [
    path("", include("governance.identity.urls")),
    path("", include("governance.authority.urls")),
    path("", include("governance.catalogue.urls")),
    path("", include("governance.policy.urls")),
    path("", include("governance.outbound.urls")),
]
