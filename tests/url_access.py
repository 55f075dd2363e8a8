"""Who may open each URL pattern: the expectation table the URL walk (tests/test_url_walk.py)
checks every pattern against.

A pattern missing here fails the walk, so a new URL cannot be added without saying who may get
it. Each entry lists one or more cases: a concrete URL (placeholders are filled with ids of the
walk's seeded objects), the subjects that GET it successfully (`read`), the status they get,
the subjects whose writes the walk must not try because they may write (`write`, default
`read`), and for an object that is not the reader's, the object whose text must never show in a
refusal (`private`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Session personas and the demo organisation's people who play them.
SESSIONS = {
    "requester": "dave",
    "approver": "alice",
    "cab_member": "carol",
    "security_approver": "sam",
    "auditor": "erin",
    "admin": "admin",
    "outsider": "mallory",
    "service_account": "ci-bot",
}
# Every kind of credential the project issues or checks.
TOKENS = (
    "pipeline_token",  # the pipeline's service account's API token
    "person_token",  # an approver's own API token
    "auditor_token",  # an auditor's own API token (the reports accept it)
    "scim_token",
    "calendar_token",  # carried in the query string, as calendar apps fetch it
    "metrics_token",
    "cluster_token",  # a Kubernetes cluster's admission webhook token
    "servicenow_token",
    "gitlab_token",  # GitLab's webhook X-Gitlab-Token
    "github_secret",  # GitHub's webhook HMAC signature
    "pagerduty_secret",  # PagerDuty's V3 webhook signature
)
SUBJECTS = ("anonymous", *SESSIONS, *TOKENS)

WRITE_METHODS = ("post", "put", "patch", "delete")
# A refusal: 401/403/404/405 (or 429 for a throttled bad token), or a redirect to a sign-in page.
DENIED_STATUSES = frozenset({401, 403, 404, 405, 429})
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")

NOBODY: frozenset[str] = frozenset()
EVERYONE = frozenset(SUBJECTS)
# Every session: the pipeline's service account too (it has no password, so a session of its
# own only exists if someone gives it one; it then sees what its global release-manager role
# shows, like anyone else with that role).
SIGNED_IN = frozenset(SESSIONS)
ADMIN = frozenset({"admin"})
AUDIT_READERS = frozenset({"auditor", "auditor_token"})
# A CAB meeting's readers: the CAB, the administrators who chair it, the auditors.
CAB_READERS = frozenset({"cab_member", "admin", "auditor"})
# Roles held on every service read every release: administrator, auditor, CAB member, security
# approver, and the pipeline's global release-manager role.
GLOBAL_READERS = frozenset(
    {"admin", "auditor", "cab_member", "security_approver", "service_account"}
)
# The payments team's release manager and approver read their team's releases only.
RELEASE_READERS = GLOBAL_READERS | {"requester", "approver"}
# Who asks for releases and changes: release managers (the requester, the pipeline) and
# administrators.
REQUESTERS = frozenset({"requester", "admin", "service_account"})
API_TOKENS = frozenset({"pipeline_token", "person_token", "auditor_token"})
# What only release managers (and administrators) do through the API: evidence, deployments,
# plans; the pipeline's token, or their sessions.
PIPELINE = REQUESTERS | {"pipeline_token"}
API_READERS = SIGNED_IN | API_TOKENS
# Through the API, what a release's readers' sessions and tokens read: the approver's token
# reads their team's, the pipeline's and the auditor's read everything.
API_RELEASE_READERS = RELEASE_READERS | API_TOKENS
API_THEIR_RELEASE_READERS = GLOBAL_READERS | {"pipeline_token", "auditor_token"}
# The schema and its docs are public; a bearer credential that is not an API token is refused.
NOT_API_BEARERS = frozenset({"scim_token", "metrics_token", "cluster_token", "servicenow_token"})


@dataclass(frozen=True)
class Case:
    url: str
    read: frozenset[str]
    status: int = 200
    write: frozenset[str] | None = None
    private: str | None = None
    # Subjects sent on elsewhere by a redirect that is not a refusal (a signed-in administrator
    # opening the admin's sign-in page lands on the admin).
    redirected: frozenset[str] = NOBODY

    @property
    def writers(self) -> frozenset[str]:
        return self.read if self.write is None else self.write


def case(url: str, read: frozenset[str] = NOBODY, **options) -> tuple[Case, ...]:
    return (Case(url, frozenset(read), **options),)


def post_only(url: str, write: frozenset[str], **options) -> tuple[Case, ...]:
    """A form or webhook target: nobody GETs it (405), `write` may post to it."""
    return (Case(url, NOBODY, write=frozenset(write), **options),)


def ours_and_theirs(
    ours: str, theirs: str, read: frozenset[str], their_readers: frozenset[str] = NOBODY, **kw
) -> tuple[Case, ...]:
    """An object of the payments team and the same kind of object of the web team."""
    key = theirs.split("{")[1].split("}")[0]
    return (
        Case(ours, frozenset(read), **kw),
        Case(theirs, frozenset(their_readers), private=key, **kw),
    )


# --- Django admin: administrators (staff) only, the sign-in page for everyone ---------------------
# Every model the admin serves, listed here rather than read from the admin's registry: a model
# newly registered there is a new set of URLs someone must decide about.
ADMIN_MODELS = (
    "auth.group",
    "auditlog.logentry",
    "governance.user",
    "governance.team",
    "governance.service",
    "governance.environment",
    "governance.roleassignment",
    "governance.apitoken",
    "governance.policy",
    "governance.ledgerentry",
    "governance.outboundevent",
    "governance.identitygroup",
    "governance.grouprolemapping",
    "governance.scimtoken",
    "governance.vendor",
    "otp_totp.totpdevice",
    "changes.changerecord",
    "changes.freeze",
    "changes.freezeoverride",
    "changes.incident",
    "approvals.release",
    "approvals.approvalrequest",
    "approvals.decision",
)
# Records the admin only shows: they change through the services (ledgered), never here.
ADMIN_NO_ADD = frozenset(
    {
        "auditlog.logentry",
        "governance.team",
        "governance.service",
        "governance.apitoken",
        "governance.ledgerentry",
        "governance.outboundevent",
        "governance.identitygroup",
        "governance.scimtoken",
        "governance.vendor",
        "changes.changerecord",
        "changes.freeze",
        "changes.freezeoverride",
        "changes.incident",
        "approvals.release",
        "approvals.approvalrequest",
        "approvals.decision",
    }
)
ADMIN_NO_DELETE = ADMIN_NO_ADD - {"governance.apitoken"} | {"governance.policy"}


def _admin_model_pages(label: str) -> dict[str, tuple[Case, ...]]:
    """The six pages the admin serves for a model; an object's bare URL redirects to its
    change page. The placeholder names the first row of the model. The administrator gets 403
    from the add and delete pages of a record the admin only shows."""
    app, model = label.split(".")
    base, obj = f"admin/{app}/{model}/", f"/admin/{app}/{model}/{{admin_{app}_{model}}}/"
    add = ADMIN if label not in ADMIN_NO_ADD else NOBODY
    delete = ADMIN if label not in ADMIN_NO_DELETE else NOBODY
    return {
        base: case(f"/{base}", ADMIN),
        f"{base}add/": case(f"/{base}add/", add),
        f"{base}<path:object_id>/history/": case(f"{obj}history/", ADMIN),
        f"{base}<path:object_id>/delete/": case(f"{obj}delete/", delete),
        f"{base}<path:object_id>/change/": case(f"{obj}change/", ADMIN),
        f"{base}<path:object_id>/": case(obj, NOBODY, write=ADMIN, redirected=ADMIN),
    }


ADMIN_SITE: dict[str, tuple[Case, ...]] = {
    "admin/": case("/admin/", ADMIN),
    "admin/login/": case("/admin/login/", EVERYONE - ADMIN, write=EVERYONE, redirected=ADMIN),
    # Django sends anyone but staff from the admin's sign-out to the admin (and so to sign-in).
    "admin/logout/": case("/admin/logout/", NOBODY, write=EVERYONE, redirected=EVERYONE - ADMIN),
    "admin/password_change/": case("/admin/password_change/", ADMIN),
    "admin/password_change/done/": case("/admin/password_change/done/", ADMIN),
    "admin/autocomplete/": case("/admin/autocomplete/", NOBODY, write=ADMIN),
    "admin/jsi18n/": case("/admin/jsi18n/", ADMIN),
    # "View on site": a release has no public URL of its own, so 404 for the administrator too.
    "admin/r/<path:content_type_id>/<path:object_id>/": case(
        "/admin/r/{release_type}/{release}/", NOBODY
    ),
    "admin/governance/user/<id>/password/": case(
        "/admin/governance/user/{admin_governance_user}/password/", ADMIN
    ),
    "admin/otp_totp/totpdevice/<int:pk>/config/": case(
        "/admin/otp_totp/totpdevice/{admin_otp_totp_totpdevice}/config/", ADMIN
    ),
    "admin/otp_totp/totpdevice/<int:pk>/qrcode/": case(
        "/admin/otp_totp/totpdevice/{admin_otp_totp_totpdevice}/qrcode/", ADMIN
    ),
    "admin/^(?P<app_label>auth|auditlog|governance|otp_totp|changes|approvals)/$": case(
        "/admin/governance/", ADMIN
    ),
    "admin/(?P<url>.*)$": case("/admin/no-such-page/", NOBODY, write=ADMIN),
}
for _label in ADMIN_MODELS:
    ADMIN_SITE.update(_admin_model_pages(_label))


def compliance_report(extension: str) -> tuple[Case, ...]:
    url = f"/reports/compliance.{extension}?framework=SOX&from=2026-01-01&to=2026-12-31"
    return case(url, {"auditor_token"}, status=202, write=AUDIT_READERS, redirected={"auditor"})


EXPECTATIONS: dict[str, tuple[Case, ...]] = {
    # --- Dashboard and the auditors' reports ----------------------------------------------------
    "": case("/", SIGNED_IN),
    "reports/": case("/reports/", AUDIT_READERS),
    # Emergency frequency: the CAB and administrators (tests/reporting/test_emergencies.py).
    "reports/emergencies/": case("/reports/emergencies/", {"cab_member", "admin"}),
    "reports/emergencies.csv": case("/reports/emergencies.csv", {"cab_member", "admin"}),
    "reports/ledger.jsonl": case("/reports/ledger.jsonl", AUDIT_READERS),
    "reports/ledger/": case("/reports/ledger/", AUDIT_READERS),
    "reports/ledger/public-key.pem": case("/reports/ledger/public-key.pem", AUDIT_READERS),
    "reports/ledger/verify_ledger.py": case("/reports/ledger/verify_ledger.py", AUDIT_READERS),
    "reports/ledger/verify/": post_only("/reports/ledger/verify/", AUDIT_READERS),
    "reports/ledger/verifications/<int:pk>/": case(
        "/reports/ledger/verifications/{verification}/", AUDIT_READERS
    ),
    "reports/compliance/": case("/reports/compliance/", AUDIT_READERS),
    # A compliance report is written in the background: a token gets 202 with the export's
    # address, a session is sent to the export's page.
    "reports/compliance.csv": compliance_report("csv"),
    "reports/compliance.pdf": compliance_report("pdf"),
    # Only its requester fetches an export; the seeded one is still queued, so its download
    # answers 409 (not ready) to its requester.
    "reports/exports/<int:pk>/": ours_and_theirs(
        "/reports/exports/{export}/", "/reports/exports/{their_export}/", AUDIT_READERS
    ),
    "reports/exports/<int:pk>/download": ours_and_theirs(
        "/reports/exports/{export}/download",
        "/reports/exports/{their_export}/download",
        AUDIT_READERS,
        status=409,
    ),
    "reports/releases/<int:pk>/evidence.json": case(
        "/reports/releases/{release}/evidence.json", AUDIT_READERS
    ),
    "reports/releases/<int:pk>/evidence.pdf": case(
        "/reports/releases/{release}/evidence.pdf", AUDIT_READERS
    ),
    "reports/audit/": case("/reports/audit/", AUDIT_READERS),
    # --- Measuring: each audience its page; /metrics/ sends each reader to theirs ---------------
    "metrics/": case(
        "/metrics/",
        NOBODY,
        write=NOBODY,
        redirected={"requester", "cab_member", "auditor", "admin", "service_account"},
    ),
    "metrics/releases/": case(
        "/metrics/releases/", {"requester", "auditor", "admin", "service_account"}
    ),
    "metrics/cab/": case("/metrics/cab/", CAB_READERS),
    "metrics/administration/": case("/metrics/administration/", {"auditor", "admin"}),
    "reviews/": case("/reviews/", CAB_READERS),
    "reviews/<int:pk>/": case("/reviews/{quarterly_review}/", CAB_READERS),
    "reviews/<int:pk>/export.csv": case("/reviews/{quarterly_review}/export.csv", CAB_READERS),
    "reviews/<int:pk>/close/": post_only("/reviews/{quarterly_review}/close/", ADMIN),
    "reviews/<int:pk>/items/<int:item_pk>/outcome/": post_only(
        "/reviews/{quarterly_review}/items/{quarterly_item}/outcome/", CAB_READERS
    ),
    "reviews/feedback/": case("/reviews/feedback/", ADMIN),
    "reviews/feedback.csv": case("/reviews/feedback.csv", ADMIN),
    # Only a release's requester rates its workflow.
    "reviews/feedback/releases/<int:pk>/": ours_and_theirs(
        "/reviews/feedback/releases/{release}/",
        "/reviews/feedback/releases/{their_release}/",
        {"requester"},
    ),
    "anomalies/": case("/anomalies/", {"admin", "auditor", "security_approver"}),
    "anomalies/<int:pk>/acknowledge/": post_only(
        "/anomalies/{anomaly}/acknowledge/", {"admin", "auditor", "security_approver"}
    ),
    "lake/": case("/lake/", {"auditor", "admin"}),
    # --- Emergencies ----------------------------------------------------------------------------
    "approvals/emergencies/": case("/approvals/emergencies/", SIGNED_IN),
    "approvals/emergencies/new/": case("/approvals/emergencies/new/", REQUESTERS),
    "approvals/emergencies/<int:pk>/": ours_and_theirs(
        "/approvals/emergencies/{emergency}/",
        "/approvals/emergencies/{their_emergency}/",
        RELEASE_READERS,
        GLOBAL_READERS,
    ),
    "approvals/emergencies/<int:pk>/end/": post_only(
        "/approvals/emergencies/{emergency}/end/", REQUESTERS
    ),
    "approvals/emergencies/<int:pk>/review/": post_only(
        "/approvals/emergencies/{emergency}/review/", RELEASE_READERS
    ),
    # --- Approvals ------------------------------------------------------------------------------
    "approvals/": case("/approvals/", SIGNED_IN),
    "approvals/releases/": case("/approvals/releases/", SIGNED_IN),
    "approvals/releases/<int:pk>/": ours_and_theirs(
        "/approvals/releases/{release}/",
        "/approvals/releases/{their_release}/",
        RELEASE_READERS,
        GLOBAL_READERS,
    ),
    "approvals/releases/<int:pk>/updates/": ours_and_theirs(
        "/approvals/releases/{release}/updates/",
        "/approvals/releases/{their_release}/updates/",
        RELEASE_READERS,
        GLOBAL_READERS,
    ),
    "approvals/releases/<int:pk>/decide/": post_only(
        "/approvals/releases/{release}/decide/", RELEASE_READERS
    ),
    "approvals/releases/<int:pk>/withdraw/": post_only(
        "/approvals/releases/{release}/withdraw/", RELEASE_READERS
    ),
    "approvals/releases/<int:pk>/revoke/": post_only(
        "/approvals/releases/{release}/revoke/", RELEASE_READERS
    ),
    "approvals/releases/<int:pk>/freeze-override/": post_only(
        "/approvals/releases/{release}/freeze-override/", ADMIN
    ),
    "approvals/releases/<int:pk>/request-again/": post_only(
        "/approvals/releases/{release}/request-again/", RELEASE_READERS
    ),
    # --- CAB: queues and lists are filtered per reader; a meeting is its readers'. On pages, a
    # reader's action reaches the service, which refuses a non-member with a message.
    "cab/": case("/cab/", SIGNED_IN),
    "cab/meetings/": case("/cab/meetings/", SIGNED_IN),
    "cab/meetings/new/": case("/cab/meetings/new/", ADMIN),
    "cab/meetings/<int:pk>/": case("/cab/meetings/{meeting}/", CAB_READERS),
    "cab/meetings/<int:pk>/updates/": case("/cab/meetings/{meeting}/updates/", CAB_READERS),
    "cab/meetings/<int:pk>/attendance/": post_only(
        "/cab/meetings/{meeting}/attendance/", CAB_READERS
    ),
    "cab/meetings/<int:pk>/open/": post_only("/cab/meetings/{meeting}/open/", CAB_READERS),
    "cab/meetings/<int:pk>/close/": post_only("/cab/meetings/{meeting}/close/", CAB_READERS),
    "cab/meetings/<int:pk>/items/": post_only("/cab/meetings/{meeting}/items/", CAB_READERS),
    "cab/meetings/<int:pk>/items/<int:item_pk>/outcome/": post_only(
        "/cab/meetings/{meeting}/items/{item}/outcome/", CAB_READERS
    ),
    "cab/meetings/<int:pk>/minutes.pdf": case("/cab/meetings/{meeting}/minutes.pdf", CAB_READERS),
    "cab/schedules/": case("/cab/schedules/", ADMIN),
    "cab/schedules/new/": case("/cab/schedules/new/", ADMIN),
    "cab/schedules/<int:pk>/edit/": case("/cab/schedules/{schedule}/edit/", ADMIN),
    # --- Governance: administration, and what each person keeps for themselves ----------------
    "governance/profile/": case("/governance/profile/", SIGNED_IN),
    "governance/scim-tokens/": case("/governance/scim-tokens/", ADMIN),
    "governance/lockouts/": case("/governance/lockouts/", ADMIN),
    "governance/lockouts/unlock/": post_only("/governance/lockouts/unlock/", ADMIN),
    "governance/roles/": case("/governance/roles/", ADMIN),
    "governance/roles/<int:pk>/revoke/": post_only(
        "/governance/roles/{role_assignment}/revoke/", ADMIN
    ),
    "governance/delegations/": case("/governance/delegations/", SIGNED_IN),
    # The approver's own delegation: the approver and administrators revoke it.
    "governance/delegations/<int:pk>/revoke/": post_only(
        "/governance/delegations/{delegation}/revoke/",
        {"approver", "admin"},
        private="delegation",
    ),
    # Administrators, and service owners (the approver owns payments-api) for their grants.
    "governance/access-reviews/": case("/governance/access-reviews/", {"admin", "approver"}),
    "governance/access-reviews/<int:pk>/": case(
        "/governance/access-reviews/{access_review}/", {"admin", "approver"}
    ),
    "governance/access-reviews/<int:pk>/export.csv": case(
        "/governance/access-reviews/{access_review}/export.csv", {"admin", "approver"}
    ),
    "governance/access-reviews/<int:pk>/certify/": post_only(
        "/governance/access-reviews/{access_review}/certify/", {"admin", "approver"}
    ),
    "governance/catalogue/<slug:section>/": case("/governance/catalogue/services/", ADMIN),
    "governance/catalogue/<slug:section>/new/": case("/governance/catalogue/services/new/", ADMIN),
    "governance/catalogue/<slug:section>/<int:pk>/": case(
        "/governance/catalogue/services/{service}/", ADMIN
    ),
    "governance/policies/": case("/governance/policies/", ADMIN),
    "governance/policies/proposals/<int:pk>/decide/": post_only(
        "/governance/policies/proposals/{proposal}/decide/", ADMIN
    ),
    # Each person sees their teams' subscriptions.
    "governance/subscriptions/": case("/governance/subscriptions/", SIGNED_IN),
    # The payments team's subscription: its members and administrators manage it.
    "governance/subscriptions/<int:pk>/remove/": post_only(
        "/governance/subscriptions/{subscription}/remove/", {"requester", "approver", "admin"}
    ),
    "governance/subscriptions/<int:pk>/test/": post_only(
        "/governance/subscriptions/{subscription}/test/", {"requester", "approver", "admin"}
    ),
    "governance/outbox/": case("/governance/outbox/", ADMIN),
    "governance/outbox/<int:pk>/redeliver/": post_only(
        "/governance/outbox/{delivery}/redeliver/", ADMIN
    ),
    "policies/editor/": case("/policies/editor/", NOBODY, write=ADMIN, redirected=ADMIN),
    "policies/editor/validate/": post_only("/policies/editor/validate/", ADMIN),
    "policies/editor/<slug:slug>/": case("/policies/editor/{policy}/", ADMIN),
    "policies/editor/<slug:slug>/propose/": post_only("/policies/editor/{policy}/propose/", ADMIN),
    # --- Changes --------------------------------------------------------------------------------
    "changes/": case("/changes/", SIGNED_IN),
    "changes/new/": case("/changes/new/", REQUESTERS),
    "changes/<int:pk>/": ours_and_theirs(
        "/changes/{change}/", "/changes/{their_change}/", RELEASE_READERS, GLOBAL_READERS
    ),
    "changes/<int:pk>/edit/": ours_and_theirs(
        "/changes/{change}/edit/",
        "/changes/{their_change}/edit/",
        REQUESTERS,
        REQUESTERS - {"requester"},
    ),
    "changes/<int:pk>/move/": post_only("/changes/{change}/move/", REQUESTERS),
    "changes/freezes/": case("/changes/freezes/", ADMIN),
    "changes/freezes/new/": case("/changes/freezes/new/", ADMIN),
    "changes/freezes/<int:pk>/": case("/changes/freezes/{freeze}/", ADMIN),
    "changes/freezes/<int:pk>/edit/": case("/changes/freezes/{freeze}/edit/", ADMIN),
    "changes/freezes/<int:pk>/end/": post_only("/changes/freezes/{freeze}/end/", ADMIN),
    "changes/freezes/overrides/<int:pk>/confirm/": post_only(
        "/changes/freezes/overrides/{override}/confirm/", ADMIN
    ),
    # Anyone holding a role; the feed itself opens with its calendar token only.
    "changes/calendar/": case("/changes/calendar/", SIGNED_IN - {"outsider"}),
    "changes/calendar.ics": case("/changes/calendar.ics", {"calendar_token"}),
    "changes/reviews/": case("/changes/reviews/", SIGNED_IN),
    "changes/reviews/<int:pk>/": ours_and_theirs(
        "/changes/reviews/{review}/",
        "/changes/reviews/{their_review}/",
        RELEASE_READERS,
        GLOBAL_READERS,
    ),
    "changes/reviews/<int:pk>/complete/": post_only(
        "/changes/reviews/{review}/complete/", RELEASE_READERS
    ),
    "changes/reviews/<int:pk>/actions/": post_only(
        "/changes/reviews/{review}/actions/", RELEASE_READERS
    ),
    "changes/reviews/<int:pk>/actions/<int:action_pk>/done/": post_only(
        "/changes/reviews/{review}/actions/{action}/done/", RELEASE_READERS
    ),
    # --- Signing in (OIDC is off in tests: its two URLs are 404 for everyone) ------------------
    "accounts/login/": case("/accounts/login/", EVERYONE, write=EVERYONE),
    "accounts/logout/": post_only("/accounts/logout/", EVERYONE),
    "oidc/authenticate/": case("/oidc/authenticate/", NOBODY),
    "oidc/callback/": case("/oidc/callback/", NOBODY),
    # --- Pipeline API (sessions read too: DRF's session authentication is configured; their
    # writes need a CSRF token, so the walk's bare session writes are refused with 403). Who may
    # write reaches the services, which refuse what is not theirs to do (segregation of duties).
    "api/v1/releases/": case("/api/v1/releases/", API_READERS),
    "api/v1/releases/<int:pk>/": ours_and_theirs(
        "/api/v1/releases/{release}/",
        "/api/v1/releases/{their_release}/",
        API_RELEASE_READERS,
        API_THEIR_RELEASE_READERS,
    ),
    "api/v1/releases/<int:pk>/gate": ours_and_theirs(
        "/api/v1/releases/{release}/gate",
        "/api/v1/releases/{their_release}/gate",
        API_RELEASE_READERS,
        API_THEIR_RELEASE_READERS,
    ),
    "api/v1/releases/<int:pk>/explain": ours_and_theirs(
        "/api/v1/releases/{release}/explain",
        "/api/v1/releases/{their_release}/explain",
        API_RELEASE_READERS,
        API_THEIR_RELEASE_READERS,
    ),
    "api/v1/releases/<int:pk>/evidence/": post_only(
        "/api/v1/releases/{release}/evidence/", PIPELINE
    ),
    "api/v1/releases/<int:pk>/decisions/": post_only(
        "/api/v1/releases/{release}/decisions/", API_RELEASE_READERS
    ),
    "api/v1/releases/<int:pk>/decisions/revoke/": post_only(
        "/api/v1/releases/{release}/decisions/revoke/", API_RELEASE_READERS
    ),
    "api/v1/releases/<int:pk>/withdraw/": post_only(
        "/api/v1/releases/{release}/withdraw/", API_RELEASE_READERS
    ),
    "api/v1/releases/<int:pk>/request-again/": post_only(
        "/api/v1/releases/{release}/request-again/", PIPELINE
    ),
    "api/v1/releases/<int:pk>/iac-plan/": post_only(
        "/api/v1/releases/{release}/iac-plan/", PIPELINE
    ),
    "api/v1/releases/<int:pk>/deployments/": post_only(
        "/api/v1/releases/{release}/deployments/", PIPELINE
    ),
    "api/v1/releases/<int:pk>/deployments/<int:deployment_id>/health/": post_only(
        "/api/v1/releases/{release}/deployments/{deployment}/health/", PIPELINE
    ),
    # Anyone authenticated reports incidents or declares an emergency; the services decide who
    # may (an emergency needs a release manager of the service).
    "api/v1/incidents/": post_only("/api/v1/incidents/", API_READERS),
    "api/v1/changes/": case("/api/v1/changes/", API_READERS),
    "api/v1/changes/<str:ref>/": case("/api/v1/changes/{change_ref}/", API_RELEASE_READERS),
    "api/v1/changes/<str:ref>/moves/": post_only(
        "/api/v1/changes/{change_ref}/moves/", API_RELEASE_READERS
    ),
    "api/v1/emergencies/": post_only("/api/v1/emergencies/", API_READERS),
    "api/v1/emergencies/<int:pk>/": ours_and_theirs(
        "/api/v1/emergencies/{emergency}/",
        "/api/v1/emergencies/{their_emergency}/",
        API_RELEASE_READERS,
        API_THEIR_RELEASE_READERS,
    ),
    # --- Integrations, each behind its own secret -----------------------------------------------
    "integrations/pagerduty/": post_only("/integrations/pagerduty/", {"pagerduty_secret"}),
    "integrations/servicenow/": post_only("/integrations/servicenow/", {"servicenow_token"}),
    "integrations/github/": post_only("/integrations/github/", {"github_secret"}),
    "integrations/gitlab/": post_only("/integrations/gitlab/", {"gitlab_token"}),
    # Azure DevOps checks: API tokens only, never a session.
    "integrations/azure/check": post_only("/integrations/azure/check", API_TOKENS),
    "integrations/azure/releases/<int:pk>/check": post_only(
        "/integrations/azure/releases/{release}/check", {"pipeline_token"}
    ),
    "integrations/azure/gate": case(
        "/integrations/azure/gate?run_url={run_url}&environment={run_environment}", API_TOKENS
    ),
    # The gate client script is public: it holds no secret, pipelines download it.
    "integrations/signoff-gate": case("/integrations/signoff-gate", EVERYONE),
    "integrations/kubernetes/<slug:cluster>/admission": post_only(
        "/integrations/kubernetes/{cluster}/admission", {"cluster_token"}
    ),
    # Everyone signed in sees the runs waiting on releases they can see; the configuration
    # (masked secrets) is shown to administrators only.
    "approvals/integrations/": case("/approvals/integrations/", SIGNED_IN, write=ADMIN),
    "approvals/integrations/clusters/": case("/approvals/integrations/clusters/", ADMIN),
    "approvals/integrations/clusters/<slug:cluster>/": case(
        "/approvals/integrations/clusters/{cluster}/", ADMIN
    ),
    "changes/integrations/pagerduty/": case("/changes/integrations/pagerduty/", ADMIN),
    "changes/integrations/servicenow/": case("/changes/integrations/servicenow/", ADMIN),
    # --- SCIM: the SCIM token only; what django-scim2 does not implement answers 501 -----------
    "scim/v2/^$": case("/scim/v2/", {"scim_token"}, status=501),
    r"scim/v2/^\.search$": case("/scim/v2/.search", {"scim_token"}, status=501),
    r"scim/v2/^Users/\.search$": post_only("/scim/v2/Users/.search", {"scim_token"}),
    "scim/v2/^Users(?:/(?P<uuid>[^/]+))?$": case("/scim/v2/Users/{scim_user}", {"scim_token"}),
    r"scim/v2/^Groups/\.search$": post_only("/scim/v2/Groups/.search", {"scim_token"}),
    "scim/v2/^Groups(?:/(?P<uuid>[^/]+))?$": case("/scim/v2/Groups/{scim_group}", {"scim_token"}),
    "scim/v2/^Me$": case("/scim/v2/Me", {"scim_token"}, status=501),
    "scim/v2/^ServiceProviderConfig$": case("/scim/v2/ServiceProviderConfig", {"scim_token"}),
    "scim/v2/^ResourceTypes(?:/(?P<uuid>[^/]+))?$": case(
        "/scim/v2/ResourceTypes/User", {"scim_token"}
    ),
    "scim/v2/^Schemas(?:/(?P<uuid>[^/]+))?$": case("/scim/v2/Schemas", {"scim_token"}),
    "scim/v2/^Bulk$": case("/scim/v2/Bulk", {"scim_token"}, status=501),
    "^scim/v2/": case("/scim/v2/Nothing", NOBODY),
    # --- API documentation (public, README) and operations --------------------------------------
    "api/schema/": case("/api/schema/", EVERYONE - NOT_API_BEARERS, write=NOBODY),
    "api/docs/": case("/api/docs/", EVERYONE - NOT_API_BEARERS, write=NOBODY),
    "healthz": case("/healthz", EVERYONE, write=NOBODY),
    "readyz": case("/readyz", EVERYONE, write=NOBODY),
    "metrics": case("/metrics", {"metrics_token"}, write=NOBODY),
    **ADMIN_SITE,
}
