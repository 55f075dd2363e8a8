from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from changes.incidents.views import pagerduty_webhook
from governance.health import healthz, readyz
from governance.identity import oidc, scim
from reporting.prometheus.views import metrics

urlpatterns = [
    path("", include("reporting.urls")),
    path("approvals/emergencies/", include("approvals.emergencies.urls")),
    path("approvals/", include("approvals.urls")),
    path("cab/", include("approvals.cab.urls")),
    path("governance/", include("governance.urls")),
    path("policies/editor/", include("approvals.policy_editor.urls")),
    path("changes/", include("changes.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oidc/authenticate/", oidc.authenticate_view, name="oidc_authentication_init"),
    path("oidc/callback/", oidc.callback_view, name="oidc_authentication_callback"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("approvals.api.urls")),
    path("api/v1/", include("changes.incidents.urls")),
    path("api/v1/", include("changes.records.api_urls")),
    path("api/v1/", include("approvals.emergencies.api_urls")),
    path("integrations/pagerduty/", pagerduty_webhook, name="integration-pagerduty"),
    path("integrations/servicenow/", include("changes.servicenow.urls")),
    path("integrations/", include("approvals.pipelines.urls")),
    path("integrations/", include("approvals.pipelines.ci_urls")),
    path("integrations/kubernetes/", include("approvals.admission.urls")),
    path("approvals/integrations/", include("approvals.pipelines.pages")),
    path("approvals/integrations/clusters/", include("approvals.admission.pages")),
    path("api/v1/", include("approvals.verification.api_urls")),
    path("changes/integrations/", include("changes.incidents.pages")),
    path("changes/integrations/servicenow/", include("changes.servicenow.pages")),
    # SCIM 2.0 provisioning (Okta, Entra ID); django-scim2's URLs, namespace "scim".
    path("scim/v2/", include("django_scim.urls")),
    # Any other /scim/v2/ path: a SCIM error document, not Django's HTML 404.
    re_path(r"^scim/v2/", scim.unknown_endpoint, name="scim-unknown"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    # GET and HEAD only: its HTML renderer has no template for DRF's OPTIONS answer (a 500).
    path(
        "api/docs/",
        require_safe(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]

# A database outage answers 503 with Retry-After (JSON for programs), other errors the 500 page.
handler500 = "governance.unavailable.server_error"
# A path no URL matches: the API's error document for programs, the 404 page for people.
handler404 = "governance.api.errors.page_not_found"
