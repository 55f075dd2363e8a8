"""Schemathesis against the published OpenAPI schema: whatever a client sends, inside the schema
or just outside it, the API never fails with a server error and every answer is as documented
(status, content type, body, headers).

The schema comes from the application itself (`/api/schema/` over WSGI, in process, no server).
Each operation runs with two real tokens: the pipeline's service account (its requests name the
human behind the run, `triggered_by`) and a person's own (an approver's; an auditor's for the
reports). One organisation is seeded for the whole module and each operation's test runs in a
savepoint of it, so writes never leak. Path ids name the seeded objects half the time, so requests
get past the 404 to the rules behind it; the schema's request examples are sent as they are.

Bounded for CI: fixed seed, few examples per operation, no example database. Schemathesis's
coverage phase (boundary values of every field) is off: it sends ~250 requests to the release
request alone and takes the module from about 40 s to several minutes; run it by hand with
`st run` against a running instance (README).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks

from approvals import services
from approvals.emergencies.services import declare_emergency
from config.wsgi import application
from governance.models import Role
from tests import factories

# One worker runs the whole module under pytest-xdist: the organisation is seeded once.
pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("schemathesis")]

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/",
    application,
    config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}}),
)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# Seeded objects by (path prefix, path parameter), filled by `seeded`; the first prefix that
# matches an operation's path wins.
KNOWN: dict[tuple[str, str], list] = {}


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker) -> Iterator[dict[str, str]]:
    """The organisation, inside one transaction rolled back after the module; each test's own
    atomic block is a savepoint in it. Yields the bearer tokens by persona."""
    with django_db_blocker.unblock(), transaction.atomic():
        tokens = _seed()
        yield tokens
        transaction.set_rollback(True)
    KNOWN.clear()


def _seed() -> dict[str, str]:
    """payments-api (tier 1, SOX) with its release manager, an approver and an auditor; the
    pipeline's account; a pending production release, a deployed dev one, an emergency."""
    call_command("load_default_policy", verbosity=0, stdout=io.StringIO())
    production, dev = factories.environment("production"), factories.environment("dev")
    team = factories.TeamFactory(slug="payments", name="Payments")
    service = factories.ServiceFactory(
        slug="payments-api", tier=1, team=team, compliance_tags=["SOX"]
    )
    people = {name: factories.UserFactory(username=name) for name in ("dave", "alice", "erin")}
    factories.grant(people["dave"], Role.RELEASE_MANAGER, service)
    factories.grant(people["alice"], Role.APPROVER, service)
    factories.grant(people["erin"], Role.AUDITOR)
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(bot, Role.RELEASE_MANAGER)
    releases = [
        services.request_approval(
            data=factories.release_input(service, environment, triggered_by="dave"), actor=bot
        )[0]
        for environment in (production, dev)
    ]
    deployment = services.record_deployment(release=releases[1], actor=bot, status="succeeded")
    emergency = declare_emergency(
        actor=people["dave"],
        service=service,
        title="Payouts",
        justification="Payouts fail for every seller.",
        outage="All payouts",
        controls=[],
        control_notes="A second engineer watches the rollout.",
    )
    KNOWN.update(
        {
            ("/api/v1/emergencies/", "id"): [emergency.pk],
            ("/", "id"): [release.pk for release in releases],
            ("/", "deployment_id"): [deployment.pk],
            ("/", "ref"): [release.change.ref for release in releases],
        }
    )
    return {
        "pipeline": factories.token_for(bot),
        "approver": factories.token_for(people["alice"]),
        "auditor": factories.token_for(people["erin"]),
    }


def _seeded_ids(path: str, name: str) -> list:
    return next(
        (ids for (prefix, key), ids in KNOWN.items() if path.startswith(prefix) and key == name), []
    )


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict | None) -> st.SearchStrategy:
    """Half the time, each id names a seeded object instead of whatever was generated."""
    if not path_parameters:
        return st.just(path_parameters)
    path = context.operation.path
    named = {
        name: st.sampled_from(ids) | st.just(value)
        for name, value in path_parameters.items()
        if (ids := _seeded_ids(path, name))
    }
    return st.fixed_dictionaries(named).map(lambda ids: {**path_parameters, **ids})


@pytest.fixture(autouse=True)
def _one_connection() -> Iterator[None]:
    """Keep the test's connection (and its transaction) across WSGI requests, as Django's test
    client does: a real request closes it when it starts and when it ends."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=["pipeline", "person"])
def persona(request) -> str:
    """Whose token calls: the pipeline's account, or a person's (see the test)."""
    return request.param


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case, persona, seeded):
    # A person's token: the auditor's for the auditors' exports, the approver's elsewhere.
    if persona == "person":
        persona = "auditor" if case.operation.path.startswith("/reports/") else "approver"
    headers = {"Authorization": f"Bearer {seeded[persona]}"}
    case.call_and_validate(headers=headers, checks=CHECKS)


# --- What the schema states -------------------------------------------------------------------

ERROR_REF = {"$ref": "#/components/schemas/Error"}
PROGRAM_PATHS = ("/api/v1/", "/integrations/")


def _operations() -> Iterator[tuple[str, dict]]:
    """Every operation a program calls with a token (the reports' paths are documented apart)."""
    for path, methods in schema.raw_schema["paths"].items():
        if path.startswith(PROGRAM_PATHS):
            for method, operation in methods.items():
                yield f"{method.upper()} {path}", operation


def _properties(name: str) -> Iterator[tuple[str, dict]]:
    for component, definition in schema.raw_schema["components"]["schemas"].items():
        if name in definition.get("properties", {}):
            yield component, definition["properties"][name]


def test_the_error_document_is_a_component():
    components = schema.raw_schema["components"]["schemas"]

    assert components["Error"]["properties"] == {
        "error": {"$ref": "#/components/schemas/ErrorDetail"}
    }
    assert components["ErrorDetail"]["required"] == ["code", "fields", "message"]


def test_every_error_an_operation_answers_is_the_error_document():
    for label, operation in _operations():
        responses = operation["responses"]
        expected = {"401", "429"} | ({"400", "413", "415"} if "requestBody" in operation else set())
        assert expected <= set(responses), label
        for status, response in responses.items():
            if status.startswith("4"):
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                    label,
                    status,
                )
        assert "Retry-After" in responses["429"]["headers"], label


def test_a_decision_documents_each_refusal():
    decide = schema.raw_schema["paths"]["/api/v1/releases/{id}/decisions/"]["post"]

    assert sorted(decide["responses"]) == [
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "429",
    ]


def test_every_digest_states_its_pattern():
    digests = dict(_properties("digest"))
    gate = schema.raw_schema["paths"]["/api/v1/releases/{id}/gate"]["get"]
    query = next(p for p in gate["parameters"] if p["name"] == "digest")

    assert sorted(digests) == [
        "ArtifactRequest",
        "Decision",
        "DecisionInputRequest",
        "Deployment",
        "DeploymentInputRequest",
        "DeploymentRecorded",
        "Gate",
        "PlanSubmitted",
        "Release",
        "ReleaseCreated",
        "RunGate",
    ]
    assert {field["pattern"] for field in digests.values()} == {"^sha256:[0-9a-f]{64}$"}
    assert query["schema"]["pattern"] == "^sha256:[0-9a-f]{64}$"


def test_every_choice_is_a_named_enum():
    names = sorted(n for n in schema.raw_schema["components"]["schemas"] if n.endswith("Enum"))

    assert names == [
        "ApprovalStatusEnum",
        "BlankEnum",
        "ChangeCloseCodeEnum",
        "ChangeLevelEnum",
        "ChangeSourceEnum",
        "ChangeStateEnum",
        "ChangeTypeEnum",
        "CheckAnswerEnum",
        "CheckStatusEnum",
        "DecisionEnum",
        "DeploymentStatusEnum",
        "DeploymentVerificationEnum",
        "EmergencyReviewEnum",
        "EvidenceStatusEnum",
        "GateStatusEnum",
        "HealthCheckSourceEnum",
        "IncidentSourceEnum",
        "IncidentStatusEnum",
        "IncidentUrgencyEnum",
        "PlanArtifactEnum",
        "StageStatusEnum",
    ]
    assert dict(_properties("status"))["GateStage"] == {
        "$ref": "#/components/schemas/StageStatusEnum"
    }
