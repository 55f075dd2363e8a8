"""POST /api/v1/releases/<id>/iac-plan/: a pipeline submits the Terraform plan of its release.

The release under test is dave's payments-api release to production, requested by ci-bot (the
`production_release` fixture). Infrastructure releases name the image `terraform-plan` and the
digest of the plan's bytes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from approvals import services
from approvals.context import policy_context
from approvals.exceptions import InvalidTransition
from approvals.models import ApprovalRequest, InfrastructurePlan, Release
from approvals.services.infrastructure import SubmittedPlan, plan_digest, submit_plan
from governance.models import LedgerEntry, Role
from governance.policy.terraform import MAX_PLAN_BYTES
from tests import factories
from tests.approvals.test_concurrency import run_together

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "terraform"
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "governance" / "policy" / "default.yaml"


def plan(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def url(release: Release) -> str:
    return f"/api/v1/releases/{release.pk}/iac-plan/"


def post_plan(api_client, release: Release, raw: bytes, content_type: str = "application/json"):
    """POST the raw plan bytes, as `curl --data-binary @plan.json` does."""
    # CONTENT_TYPE again: the test client leaves it out of a request with an empty body.
    headers = {**api_client.headers, "CONTENT_TYPE": content_type}
    return api_client.client.post(url(release), raw, content_type=content_type, **headers)


def counts() -> dict:
    return {**factories.state_counts(), "plans": InfrastructurePlan.objects.count()}


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code
    return error["message"]


def infrastructure_release(service, environment, actor, raw: bytes, **overrides) -> Release:
    """An infrastructure release: its artifact is the plan (`terraform-plan`, the plan's digest)."""
    values = {"image": "terraform-plan", "digest": plan_digest(raw), **overrides}
    release, _ = services.request_approval(
        data=factories.release_input(service, environment, **values), actor=actor
    )
    return release


# --- who may submit ----------------------------------------------------------------------------

MATRIX = [
    ("anon", 401),
    ("outsider", 404),
    ("other_service_approver", 404),
    ("approver", 403),
    ("auditor", 403),
    ("cab_member", 403),
    ("staging_release_manager", 403),
    ("pipeline_bot", 201),
    ("requester", 201),
]


@pytest.fixture
def staging_release_manager(service, staging):
    """Requests payments-api releases to staging only: sees production's, may not request them."""
    user = factories.UserFactory(username="stan")
    factories.grant_scoped(user, Role.RELEASE_MANAGER, service=service, environment=staging)
    return user


@pytest.mark.parametrize(("persona", "expected"), MATRIX, ids=[p for p, _ in MATRIX])
def test_permission_matrix(
    request, production_release, other_service_approver, api, persona, expected
):
    client = api(None if persona == "anon" else request.getfixturevalue(persona))
    before, snapshot = counts(), factories.approval_snapshot(production_release)

    response = post_plan(client, production_release, plan("harmless.json"))

    assert response.status_code == expected, response.content
    assert response["Content-Type"] == "application/json"
    if expected == 201:
        assert InfrastructurePlan.objects.filter(release=production_release).exists()
        return
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert counts() == before
    assert factories.approval_snapshot(production_release) == snapshot


def test_the_account_that_requested_the_release_may_submit_without_the_request_role(
    production_release, approver, api
):
    # alice may only approve payments-api; the release counts as hers as its requester.
    Release.objects.filter(pk=production_release.pk).update(requested_by=approver)

    response = post_plan(api(approver), production_release, plan("harmless.json"))

    assert response.status_code == 201, response.content


def test_someone_who_sees_but_may_not_request_is_told_why(production_release, approver, api):
    message = assert_error(
        post_plan(api(approver), production_release, plan("harmless.json")), 403, "not_eligible"
    )

    assert message == (
        "Only the pipeline that requested this release, or someone who may request releases of "
        "payments-api to Production, can submit its Terraform plan."
    )


# --- the accepted plan -------------------------------------------------------------------------


def test_a_plan_is_summarised_stored_and_answered_with_the_gate(
    production_release, pipeline_bot, api
):
    raw = plan("sensitive.json")

    response = post_plan(api(pipeline_bot), production_release, raw)

    assert response.status_code == 201, response.content
    data = response.json()
    summary = {
        "creates": 2,
        "updates": 1,
        "deletes": 0,
        "replaces": 1,
        "no_ops": 1,
        "sensitive": ["aws_iam_role.deployer", "aws_kms_key.payments", "aws_db_instance.payments"],
        "world_open": [],
    }
    assert data["summary"] == summary
    assert data["sha256"] == plan_digest(raw)
    assert data["artifact"] == "image"
    assert data["status"] == "pending"
    assert data["digest"] == production_release.digest
    # The replaced database asks the built-in policy for an infrastructure review, listed
    # where it opens: after the service approvers (order 10), before the CAB (order 20).
    assert [stage["name"] for stage in data["stages"]] == [
        "Service approval",
        "Infrastructure review",
        "CAB approval",
    ]
    stored = InfrastructurePlan.objects.get(release=production_release)
    assert (stored.format_version, stored.terraform_version, stored.sha256) == (
        "1.2",
        "1.6.6",
        plan_digest(raw),
    )
    assert stored.summary == summary
    assert stored.submitted_by == pipeline_bot


def test_the_ledger_records_the_plan(production_release, pipeline_bot, api):
    raw = plan("world_open_vpc_ingress_rule.json")

    post_plan(api(pipeline_bot), production_release, raw)

    entry = LedgerEntry.objects.get(kind="iac.plan_submitted")
    assert (entry.subject, entry.actor) == (f"release:{production_release.pk}", "ci-bot")
    assert entry.payload == {
        "service": "payments-api",
        "environment": "production",
        "sha256": plan_digest(raw),
        "artifact": "image",
        "format_version": "1.2",
        "terraform_version": "1.6.6",
        "summary": {
            "creates": 1,
            "updates": 0,
            "deletes": 0,
            "replaces": 1,
            "no_ops": 0,
            "reads": 0,
            "forgets": 0,
            "sensitive": 2,
            "world_open": 2,
        },
    }


def test_the_policy_sees_the_plan(production_release, pipeline_bot, api):
    post_plan(api(pipeline_bot), production_release, plan("pure_delete.json"))

    release = Release.objects.get(pk=production_release.pk)
    assert policy_context(release)["plan"] == {
        "present": True,
        "creates": 0,
        "updates": 1,
        "deletes": 1,
        "replaces": 0,
        "no_ops": 0,
        "sensitive": [],
        "world_open": [],
    }


# --- refusals change nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "The plan is not JSON: Expecting value: line 1 column 1 (char 0)."),
        (b"\xff\xfe{}", "The plan is not UTF-8 text (byte 0); send the output of "),
        (plan("malformed_array.json"), "The plan must be a JSON object"),
        (plan("malformed_state_not_plan.json"), "The plan has no resource_changes list"),
        (
            plan("malformed_missing_actions.json"),
            "aws_iam_role.deployer: the change has no actions.",
        ),
        (plan("malformed_format_version_2.json"), 'unsupported format_version ("2.0")'),
        (plan("malformed_truncated.json"), "The plan is not JSON: "),
    ],
    ids=["empty", "utf16", "array", "state", "no-actions", "format-2", "truncated"],
)
def test_a_malformed_plan_is_refused_and_changes_nothing(
    production_release, pipeline_bot, api, raw, message
):
    before, snapshot = counts(), factories.approval_snapshot(production_release)

    response = post_plan(api(pipeline_bot), production_release, raw)

    assert assert_error(response, 400, "invalid_plan").startswith(message)
    assert counts() == before
    assert factories.approval_snapshot(production_release) == snapshot


def test_a_body_that_is_not_json_by_its_content_type_is_refused(
    production_release, pipeline_bot, api
):
    before = counts()

    response = post_plan(api(pipeline_bot), production_release, plan("harmless.json"), "text/plain")

    assert_error(response, 415, "unsupported_media_type")
    assert counts() == before


def test_a_plan_over_20_mib_is_refused_before_it_is_read(production_release, pipeline_bot, api):
    before = counts()
    raw = b" " * (MAX_PLAN_BYTES + 1)

    response = post_plan(api(pipeline_bot), production_release, raw)

    assert assert_error(response, 413, "payload_too_large") == "The plan is larger than 20 MiB."
    assert counts() == before


def test_a_plan_over_the_1_mib_of_other_bodies_is_accepted(production_release, pipeline_bot, api):
    document = json.loads(plan("harmless.json"))
    document["padding"] = "x" * (2 * 1024 * 1024)  # plans carry configuration and prior state

    response = post_plan(api(pipeline_bot), production_release, json.dumps(document).encode())

    assert response.status_code == 201, response.content


def test_a_second_plan_is_refused_a_changed_plan_is_a_new_release(
    production_release, pipeline_bot, api
):
    client = api(pipeline_bot)
    post_plan(client, production_release, plan("harmless.json"))
    before, snapshot = counts(), factories.approval_snapshot(production_release)

    changed = post_plan(client, production_release, plan("pure_delete.json"))
    replayed = post_plan(client, production_release, plan("harmless.json"))

    assert assert_error(changed, 409, "invalid_transition") == (
        "This release already has a Terraform plan; a changed plan is a different artifact: "
        "request a new release."
    )
    assert assert_error(replayed, 409, "invalid_transition") == (
        "This plan was already submitted for this release."
    )
    assert counts() == before
    assert factories.approval_snapshot(production_release) == snapshot
    assert InfrastructurePlan.objects.get().summary["deletes"] == 0


def _reject(release, approver):
    factories.decide(release, approver, "reject", "The migration drops a column.")


def _withdraw(release, requester):
    services.withdraw_request(release=release, actor=requester, reason="Superseded.")


def _expire(release, _):
    ApprovalRequest.objects.filter(release=release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    services.expire_requests()


def _lapse(release, _):
    # Past its deadline, before the sweep has marked it: expired all the same.
    ApprovalRequest.objects.filter(release=release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    ("close", "state"),
    [(_reject, "rejected"), (_withdraw, "withdrawn"), (_expire, "expired"), (_lapse, "expired")],
    ids=["rejected", "withdrawn", "expired", "past-its-deadline"],
)
def test_a_plan_for_a_closed_request_is_refused(
    request, production_release, pipeline_bot, approver, requester, api, close, state
):
    close(production_release, approver if close is _reject else requester)
    before, snapshot = counts(), factories.approval_snapshot(production_release)

    response = post_plan(api(pipeline_bot), production_release, plan("pure_delete.json"))

    assert assert_error(response, 409, "invalid_transition") == (
        f"This request is {state}; a plan can no longer change it. Request a new release for "
        "this plan."
    )
    assert counts() == before
    assert factories.approval_snapshot(production_release) == snapshot


# --- infrastructure releases: the plan is the artifact -----------------------------------------


def test_a_release_whose_digest_is_the_plans_has_the_plan_as_its_artifact(
    org, service, production, pipeline_bot, api
):
    raw = plan("harmless.json")
    release = infrastructure_release(service, production, pipeline_bot, raw)

    response = post_plan(api(pipeline_bot), release, raw)

    assert response.status_code == 201, response.content
    assert (response.json()["artifact"], response.json()["sha256"]) == ("plan", release.digest)
    assert LedgerEntry.objects.get(kind="iac.plan_submitted").payload["artifact"] == "plan"


def test_a_digest_matching_the_plan_marks_it_the_artifact_whatever_the_image(
    org, service, production, pipeline_bot, api
):
    raw = plan("harmless.json")
    release = infrastructure_release(service, production, pipeline_bot, raw, image="infra/plan")

    response = post_plan(api(pipeline_bot), release, raw)

    assert response.json()["artifact"] == "plan"


def test_a_terraform_plan_release_refuses_another_plan_naming_both_digests(
    org, service, production, pipeline_bot, api
):
    release = infrastructure_release(service, production, pipeline_bot, plan("harmless.json"))
    other = plan("pure_delete.json")
    before, snapshot = counts(), factories.approval_snapshot(release)

    response = post_plan(api(pipeline_bot), release, other)

    message = assert_error(response, 400, "invalid")
    assert release.digest in message
    assert plan_digest(other) in message
    assert counts() == before
    assert factories.approval_snapshot(release) == snapshot


# --- the policy tightens production --------------------------------------------------------------


@pytest.fixture
def infrastructure_policy(org):
    """The built-in policy, as `org` publishes it: its infrastructure rules included."""


@pytest.mark.parametrize("fixture", ["pure_delete.json", "replace_create_then_delete.json"])
def test_a_destructive_plan_adds_the_infrastructure_review_in_production(
    infrastructure_policy, service, production, pipeline_bot, api, fixture
):
    raw = plan(fixture)
    release = infrastructure_release(service, production, pipeline_bot, raw)

    response = post_plan(api(pipeline_bot), release, raw)

    assert response.status_code == 201, response.content
    stages = [(s["name"], s["order"], s["required"]) for s in response.json()["stages"]]
    assert sorted(stages, key=lambda s: s[1]) == [
        ("Service approval", 10, 2),
        ("Infrastructure review", 15, 1),
        ("CAB approval", 20, 1),
    ]
    assert response.json()["status"] == "pending"
    explained = api(pipeline_bot).get(f"/api/v1/releases/{release.pk}/explain").json()
    review = next(r for r in explained["requirements"] if r["key"] == "infrastructure")
    (rule,) = review["rules"]
    assert rule["id"] == "production-infrastructure-review"
    assert rule["values"]["environment.risk"] == "high"
    assert rule["values"]["plan.deletes"] + rule["values"]["plan.replaces"] == 1


def test_a_plan_opening_ingress_to_the_world_is_blocked_naming_the_resource(
    infrastructure_policy, service, production, pipeline_bot, api
):
    raw = plan("world_open_security_group_rule.json")
    release = infrastructure_release(service, production, pipeline_bot, raw)

    response = post_plan(api(pipeline_bot), release, raw)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "blocked"
    (world_open,) = body["summary"]["world_open"]
    assert any(
        reason.startswith("The Terraform plan opens ingress from the whole internet")
        and world_open in reason
        and reason.endswith("(policy rule production-no-world-ingress)")
        for reason in body["reasons"]
    )


def test_a_harmless_plan_adds_nothing(
    infrastructure_policy, service, production, pipeline_bot, api
):
    raw = plan("harmless.json")
    release = infrastructure_release(service, production, pipeline_bot, raw)

    response = post_plan(api(pipeline_bot), release, raw)

    assert [stage["name"] for stage in response.json()["stages"]] == [
        "Service approval",
        "CAB approval",
    ]


def test_staging_is_not_tightened(infrastructure_policy, service, staging, pipeline_bot, api):
    raw = plan("pure_delete.json")
    release = infrastructure_release(service, staging, pipeline_bot, raw)

    response = post_plan(api(pipeline_bot), release, raw)

    assert [stage["name"] for stage in response.json()["stages"]] == ["Service approval"]


# --- the release page's panel ------------------------------------------------------------------


def render_panel(release: Release) -> str:
    return render_to_string("approvals/partials/iac_plan.html", {"release": release})


def page_release(release: Release) -> Release:
    """The release as the page should load it: with its plan and who submitted it."""
    return (
        Release.objects.for_page()
        .select_related("infrastructure_plan__submitted_by")
        .get(pk=release.pk)
    )


def test_the_panel_shows_counts_sensitive_and_world_open_addresses(
    production_release, pipeline_bot, api, django_assert_num_queries
):
    post_plan(api(pipeline_bot), production_release, plan("world_open_vpc_ingress_rule.json"))
    release = page_release(production_release)

    with django_assert_num_queries(0):
        html = render_panel(release)

    assert 'data-testid="iac-plan"' in html
    assert 'data-testid="iac-world-open"' in html
    assert html.count("aws_vpc_security_group_ingress_rule.https_ipv4") == 2  # alert and list
    assert html.count('<span class="badge text-bg-danger">open to the world</span>') == 2
    assert "<td>1</td>" in html  # one create
    assert '<td class="text-danger fw-semibold">1</td>' in html  # one replace, in red
    assert "The plan accompanies the release's image." in html
    assert "ci-bot" in html


def test_the_panel_says_when_the_plan_is_the_artifact(org, service, production, pipeline_bot, api):
    raw = plan("harmless.json")
    release = infrastructure_release(service, production, pipeline_bot, raw)
    post_plan(api(pipeline_bot), release, raw)

    html = render_panel(page_release(release))

    assert "This plan is the release's artifact" in html
    assert 'data-testid="iac-world-open"' not in html


def test_an_infrastructure_release_without_its_plan_says_so(org, service, production, pipeline_bot):
    release = infrastructure_release(service, production, pipeline_bot, plan("harmless.json"))

    html = render_panel(page_release(release))

    assert 'data-testid="iac-plan-missing"' in html
    assert f"/api/v1/releases/{release.pk}/iac-plan/" in html


def test_other_releases_without_a_plan_show_no_panel(production_release, django_assert_num_queries):
    release = page_release(production_release)

    with django_assert_num_queries(0):
        html = render_panel(release)

    assert html.strip() == ""


# --- two pipelines at once ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_plans_at_the_same_time_store_one(production_release, pipeline_bot):
    def submit(name: str):
        def call() -> SubmittedPlan:
            release = Release.objects.for_write().get(pk=production_release.pk)
            return submit_plan(release=release, actor=pipeline_bot, body=plan(name))

        return call

    results = run_together(submit("harmless.json"), submit("pure_delete.json"))

    assert sorted(type(result).__name__ for result in results) == [
        "InvalidTransition",
        "SubmittedPlan",
    ], results
    stored = next(result for result in results if isinstance(result, SubmittedPlan)).plan
    assert list(InfrastructurePlan.objects.values_list("pk", flat=True)) == [stored.pk]
    assert LedgerEntry.objects.filter(kind="iac.plan_submitted").count() == 1
    assert any(isinstance(result, InvalidTransition) for result in results)
