"""Every URL pattern, walked as anonymous, as each persona and with each kind of token.

The expectation table (tests/url_access.py) says who may open each pattern; this module seeds
one organisation (the demo's, plus the tokens, secrets and objects the demo does not make) and
asserts that everyone else is turned away: a sign-in redirect, 401, 403, 404 or 405, never the
object, and that a refused write changes nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.admission import services as admission
from approvals.models import (
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Deployment,
    EmergencyException,
    Evidence,
    Release,
)
from approvals.pipelines import services as pipelines
from approvals.pipelines.signatures import github_signature
from changes.incidents import services as incidents
from changes.incidents.signatures import pagerduty_signature
from changes.models import (
    AgendaItem,
    CabMeeting,
    CabSchedule,
    ChangeRecord,
    Freeze,
    FreezeOverride,
    Incident,
    Review,
    ReviewAction,
)
from changes.servicenow import services as servicenow
from governance.authority.models import AccessReview, Delegation, Role, RoleAssignment
from governance.authority.reviews import start_access_review
from governance.authority.services import create_delegation
from governance.identity import feeds
from governance.identity.services import add_role_mapping, issue_scim_token, provision_group
from governance.ledger.verification import request_verification
from governance.models import (
    ApiToken,
    Environment,
    IdentityGroup,
    OutboundEvent,
    Policy,
    PolicyVersion,
    ScimToken,
    Service,
    Target,
    User,
    Vendor,
)
from governance.notifications.models import Delivery, Subscription
from governance.policy.models import PolicyProposal
from reporting.anomalies.models import AnomalyAlert
from reporting.models import ReportExport
from reporting.reviews.models import QuarterlyReview, WorkflowFeedback
from tests import factories
from tests.url_access import (
    ADMIN_MODELS,
    DENIED_STATUSES,
    EXPECTATIONS,
    LOGIN_PATHS,
    SESSIONS,
    SUBJECTS,
    WRITE_METHODS,
    Case,
)

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "metrics-scrape-token-0123456789abcdef"
GITHUB_SECRET = "github-webhook-secret-0123456789"
GITLAB_SECRET = "gitlab-webhook-token-0123456789"
PAGERDUTY_SECRET = "pagerduty-signing-secret-0123456789"
DELEGATION_REASON = "Alice's parental leave, payments cover"


def route_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    """Every URL pattern the root resolver serves, as its full route text."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from route_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


ROUTES = list(route_patterns())


# --- The organisation ----------------------------------------------------------------------------


@dataclass
class Organisation:
    """The seeded organisation: people by persona, secrets by token kind, objects by name."""

    people: dict[str, User]
    secrets: dict[str, str]
    objects: dict[str, object] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def organisation(django_db_setup, django_db_blocker) -> Iterator[Organisation]:
    """Seeded once for the module inside a transaction that is rolled back at its end; each
    test runs in a savepoint of it (pytest-django's `db`), so one test's writes never reach the
    next."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            organisation = _seed()
            organisation.clients = {name: _client(name, organisation) for name in SUBJECTS}
            organisation.placeholders = _placeholders(organisation)
            yield organisation
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _metrics_token(settings) -> None:
    settings.SIGNOFF_METRICS_TOKEN = METRICS_TOKEN


def _seed() -> Organisation:
    call_command("seed_demo", stdout=io.StringIO())
    people = {
        persona: User.objects.get(username=username)
        for persona, username in SESSIONS.items()
        if persona != "outsider"
    }
    people["outsider"] = factories.UserFactory(username="mallory")
    return Organisation(people=people, secrets=_secrets(people), objects=_objects(people))


def _secrets(people: dict[str, User]) -> dict[str, str]:
    cluster = Target.objects.get(slug="prod-eu-1")
    registration = admission.register_cluster(
        name=cluster.name,
        environment=cluster.environment,
        namespaces=list(cluster.namespaces),
        actor="admin",
        rotate_token=True,
    )
    pipelines.configure_integration(provider="github", actor="admin", secret=GITHUB_SECRET)
    pipelines.configure_integration(
        provider="gitlab",
        actor="admin",
        secret=GITLAB_SECRET,
        api_url="https://gitlab.example.com",
        api_token="glpat-0123456789abcdef",
    )
    incidents.configure_integration(source="pagerduty", secrets=[PAGERDUTY_SECRET], actor="admin")
    calendar_key = feeds.issue_feed_key(user=people["approver"], actor=people["approver"])
    return {
        "pipeline_token": factories.token_for(people["service_account"]),
        "person_token": factories.token_for(people["approver"]),
        "auditor_token": factories.token_for(people["auditor"]),
        "scim_token": issue_scim_token(name="okta", actor=None)[1],
        "calendar_token": feeds.token_for(calendar_key),
        "metrics_token": METRICS_TOKEN,
        "cluster_token": registration.token,
        "servicenow_token": servicenow.issue_token(actor="admin"),
        "gitlab_token": GITLAB_SECRET,
        "github_secret": GITHUB_SECRET,
        "pagerduty_secret": PAGERDUTY_SECRET,
    }


def _first(queryset) -> object:
    return queryset.order_by("pk").first()


def _objects(people: dict[str, User]) -> dict[str, object]:
    """The objects whose ids fill the path parameters: "ours" belong to the payments team the
    personas work in, "theirs" to the web team, which none of them may see."""
    now = timezone.now()
    ours = _first(Release.objects.filter(service__slug="payments-api").exclude(pipeline_run_url=""))
    theirs = _first(Release.objects.filter(service__team__slug="web"))
    other_auditor = factories.UserFactory(username="olivia")
    factories.grant(other_auditor, Role.AUDITOR)
    objects = {
        "release": ours,
        "their_release": theirs,
        "deployment": _first(Deployment.objects.filter(release__service__slug="payments-api")),
        "change": _first(ChangeRecord.objects.filter(services__slug="payments-api")),
        "their_change": _first(ChangeRecord.objects.filter(services__team__slug="web")),
        "emergency": _first(EmergencyException.objects.filter(service__slug="payments-api")),
        "their_emergency": _first(EmergencyException.objects.filter(service__team__slug="web")),
        "meeting": _first(CabMeeting.objects.all()),
        "schedule": _first(CabSchedule.objects.all()),
        "role_assignment": _first(RoleAssignment.objects.filter(user=people["approver"])),
        "delegation": create_delegation(
            delegator=people["approver"],
            delegate=User.objects.get(username="bob"),
            service=Service.objects.get(slug="payments-api"),
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=8),
            reason=DELEGATION_REASON,
            actor=people["approver"],
        ),
        "access_review": start_access_review(actor=people["admin"]),
        "service": Service.objects.get(slug="payments-api"),
        "policy": _first(Policy.objects.all()),
        "subscription": Subscription.objects.create(
            team=people["approver"].teams.first(),
            name="Payments hook",
            channel=Subscription.Channel.WEBHOOK,
            url="https://hooks.example.com/payments",
            created_by=people["admin"],
        ),
        "delivery": Delivery.objects.create(
            channel="webhook", kind="release.decided", url="https://hooks.example.com/payments"
        ),
        "freeze": _first(Freeze.objects.all()),
        "review": _first(Review.objects.filter(service__slug="payments-api")),
        "their_review": _first(Review.objects.filter(service__team__slug="web")),
        "verification": request_verification(actor=people["auditor"], enqueue=lambda pk: None)[0],
        "export": _export(people["auditor"]),
        "their_export": _export(other_auditor),
        "quarterly_review": _first(QuarterlyReview.objects.all()),
        "anomaly": _first(AnomalyAlert.objects.all()),
        "cluster": Target.objects.get(slug="prod-eu-1"),
        "scim_group": provision_group(
            group=IdentityGroup(name="okta-approvers"), members=[], source="scim:okta"
        ),
    }
    objects["item"] = _first(AgendaItem.objects.filter(meeting=objects["meeting"]))
    objects["quarterly_item"] = _first(objects["quarterly_review"].items.all())
    objects["proposal"] = PolicyProposal.objects.create(
        policy=objects["policy"], source=objects["policy"].source, proposed_by=people["admin"]
    )
    objects["override"] = FreezeOverride.objects.create(
        freeze=objects["freeze"],
        release_id=ours.pk,
        release_label=str(ours),
        reason="Hotfix",
        requested_by=people["admin"],
        expires_at=now + timedelta(hours=4),
    )
    objects["action"] = ReviewAction.objects.create(
        review=objects["review"],
        description="Add a canary",
        owner=people["approver"],
        due_on=(now + timedelta(days=7)).date(),
    )
    TOTPDevice.objects.create(user=people["approver"], name="phone")
    Group.objects.create(name="release-managers")
    add_role_mapping(
        group=objects["scim_group"],
        role=Role.APPROVER,
        service=objects["service"],
        reason="Okta group",
        actor=people["admin"],
    )
    return objects


def _export(person: User) -> ReportExport:
    return ReportExport.objects.create(
        requested_by=person,
        kind=ReportExport.Kind.COMPLIANCE,
        format=ReportExport.Format.CSV,
        parameters={},
    )


def _placeholders(org: Organisation) -> dict[str, str]:
    """What fills the table's URL placeholders: ids, slugs and references of the seeded objects,
    and for every model the admin serves, its first row."""
    values = {name: str(getattr(obj, "pk", obj)) for name, obj in org.objects.items()}
    values.update(
        cluster=org.objects["cluster"].slug,
        policy=org.objects["policy"].slug,
        change_ref=org.objects["change"].ref,
        scim_user=org.people["approver"].scim_id,
        scim_group=org.objects["scim_group"].scim_id,
        release_type=str(ContentType.objects.get_for_model(Release).pk),
        run_url=quote(org.objects["release"].pipeline_run_url, safe=""),
        run_environment=org.objects["release"].environment.slug,
    )
    for label in ADMIN_MODELS:
        model = apps.get_model(label)
        values[f"admin_{label.replace('.', '_')}"] = str(_first(model.objects.all()).pk)
    return values


def _private_text(obj: object) -> str:
    """Text of an object that a refusal must never carry back to someone it is not for."""
    if isinstance(obj, Release):
        return obj.version
    if isinstance(obj, ChangeRecord):
        return obj.title
    if isinstance(obj, Review):
        return obj.service.name
    if isinstance(obj, ReportExport):
        return obj.requested_by.username
    if isinstance(obj, Delegation):
        return obj.reason
    if isinstance(obj, EmergencyException):
        return obj.change.ref
    raise TypeError(f"No private text for {obj!r}")


# --- Subjects and requests -----------------------------------------------------------------------

# Anonymous and a signed-in person with no role also try HEAD and OPTIONS on every pattern.
PROBED = ("anonymous", "outsider")
# DRF's answer to OPTIONS: what the endpoint is and accepts, nothing of any object.
ENDPOINT_METADATA = frozenset({"name", "description", "renders", "parses", "actions"})
# Every table a write reachable from a URL touches first, and the ledger.
FINGERPRINTED = (
    Release,
    ChangeRecord,
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Evidence,
    Deployment,
    PolicyVersion,
    Delivery,
    User,
    RoleAssignment,
    Delegation,
    ApiToken,
    ScimToken,
    IdentityGroup,
    Freeze,
    FreezeOverride,
    CabMeeting,
    AgendaItem,
    Incident,
    ReportExport,
    Subscription,
    EmergencyException,
    ReviewAction,
    WorkflowFeedback,
    PolicyProposal,
    AccessReview,
    Environment,
    Service,
    Vendor,
    OutboundEvent,
)
BEARER = {
    "pipeline_token",
    "person_token",
    "auditor_token",
    "scim_token",
    "metrics_token",
    "cluster_token",
    "servicenow_token",
}


def _client(subject: str, org: Organisation) -> Client:
    # Each subject calls from its own address: a token refused by one endpoint counts towards
    # that address's failed-token limit, and must not get another subject throttled.
    client = Client(REMOTE_ADDR=f"10.0.0.{SUBJECTS.index(subject) + 1}")
    if subject in SESSIONS:
        client.force_login(org.people[subject])
    return client


def _send(org: Organisation, subject: str, method: str, url: str, body: bytes = b""):
    """One request as `subject`: its session cookie, or its credential where that kind of
    credential travels (header, signature over the body, or the query string)."""
    secret, headers = org.secrets.get(subject, ""), {}
    if subject in BEARER:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    elif subject == "calendar_token":
        url += ("&" if "?" in url else "?") + f"token={secret}"
    elif subject == "gitlab_token":
        headers["HTTP_X_GITLAB_TOKEN"] = secret
    elif subject == "github_secret":
        headers["HTTP_X_HUB_SIGNATURE_256"] = github_signature(secret, body)
    elif subject == "pagerduty_secret":
        headers["HTTP_X_PAGERDUTY_SIGNATURE"] = pagerduty_signature(secret, body)
    send = getattr(org.clients[subject], method)
    if method in ("get", "head", "options"):
        return send(url, **headers)
    return send(url, body, content_type="application/json", **headers)


def _refusal_problem(response) -> str | None:
    if response.status_code in DENIED_STATUSES:
        return None
    location = response.headers.get("Location", "")
    if response.status_code == 302 and location.startswith(LOGIN_PATHS):
        return None
    return f"{response.status_code} {location}".strip()


def _problem(case: Case, subject: str, response, org: Organisation) -> str | None:
    """What is wrong with `response` to `subject` under `case`, or None."""
    status, location = response.status_code, response.headers.get("Location", "")
    if subject in case.read:
        return None if status == case.status else f"expected {case.status}, got {status}"
    if subject in case.redirected:
        redirected = status == 302 and not location.startswith(LOGIN_PATHS)
        return None if redirected else f"expected a redirect, got {status} {location}"
    problem = _refusal_problem(response)
    if problem:
        return f"expected a refusal, got {problem}"
    return _leak(case, response, org)


def _leak(case: Case, response, org: Organisation) -> str | None:
    if case.private and _private_text(org.objects[case.private]).encode() in response.content:
        return f"refused, but the body shows {case.private}"
    return None


# --- The walk ------------------------------------------------------------------------------------


def test_every_url_pattern_has_an_entry_and_every_entry_a_pattern():
    assert sorted(set(ROUTES) - set(EXPECTATIONS)) == []
    assert sorted(set(EXPECTATIONS) - set(ROUTES)) == []
    assert len(ROUTES) == len(set(ROUTES))


@pytest.mark.parametrize("route", ROUTES)
def test_only_the_listed_subjects_open_the_pattern(organisation, route):
    assert route in EXPECTATIONS, f"No entry in tests/url_access.py says who may open {route}"
    problems = []
    for case in EXPECTATIONS[route]:
        url = case.url.format(**organisation.placeholders)
        for subject in SUBJECTS:
            response = _send(organisation, subject, "get", url)
            problem = _problem(case, subject, response, organisation)
            if subject in PROBED and not problem:
                problem = _probe_problem(organisation, subject, url, response)
            if problem:
                problems.append(f"GET {url} as {subject}: {problem}")
    assert not problems, "\n".join(problems)


def _probe_problem(org: Organisation, subject: str, url: str, answer) -> str | None:
    """HEAD answers as GET does (or 405 where a page offers GET only); OPTIONS describes at most
    the endpoint (DRF's metadata), never an object, and opens nothing GET refuses."""
    head = _send(org, subject, "head", url)
    if head.status_code not in (answer.status_code, 405):
        return f"HEAD answered {head.status_code}, GET {answer.status_code}"
    options = _send(org, subject, "options", url)
    if _refusal_problem(answer) is None and _refusal_problem(options) is not None:
        body = options.content.strip()
        if body and not set(json.loads(body)) <= ENDPOINT_METADATA:
            return f"OPTIONS answered {options.status_code} where GET is refused: {body[:80]}"
    return None


def _write_methods(route: str) -> tuple[str, ...]:
    """POST everywhere; PUT, PATCH and DELETE where they mean something (the JSON APIs, SCIM,
    the integrations). Pages read a form from POST only, and the admin writes with POST too."""
    if route.startswith(("api/", "scim/", "^scim/", "integrations/")):
        return WRITE_METHODS
    return ("post",)


@pytest.mark.parametrize("route", ROUTES)
def test_refused_writes_change_nothing(organisation, route):
    before = factories.table_state(*FINGERPRINTED)
    problems = []
    for case in EXPECTATIONS.get(route, ()):
        url = case.url.format(**organisation.placeholders)
        for subject in (s for s in SUBJECTS if s not in case.writers):
            for method in _write_methods(route):
                response = _send(organisation, subject, method, url, b"{}")
                problem = _refusal_problem(response) or _leak(case, response, organisation)
                if problem:
                    problems.append(f"{method.upper()} {url} as {subject}: {problem}")
    assert not problems, "\n".join(problems)
    assert factories.table_state(*FINGERPRINTED) == before
