"""GET /api/v1/releases/<id>/gate: may this digest go to its environment now, and if not, why."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import services
from approvals.gate import build_snapshot, evaluate_gate, refresh_snapshot
from approvals.models import ApprovalRequest, ApprovalStage, Evidence, Release
from changes.records.services import set_change_state
from tests import factories

# Token, the caller's global role permissions, then the release with its change record and
# approval request (whose snapshot holds stages, decisions and evidence), the hard freezes
# covering it (changes.freezes) and the incidents holding it (changes.incidents).
GATE_QUERIES = 5


def gate_url(release, digest: str | None = None) -> str:
    url = f"/api/v1/releases/{release.pk}/gate"
    return f"{url}?digest={digest}" if digest else url


@pytest.fixture
def pipeline(api, pipeline_bot):
    """The pipeline's API client: it asks the gate and reports evidence."""
    return api(pipeline_bot)


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member):
    """dave's production release after alice and bob (service) and carol (CAB) approved it."""
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


def test_a_pending_gate_names_who_can_approve(production_release, pipeline):
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")

    response = pipeline.get(gate_url(production_release))

    assert response.status_code == 200
    assert response.json() == {
        "status": "pending",
        "reasons": [
            "Waiting for Service approval: 0 of 2 approvals (eligible: alice, bob, "
            f"due {stage.due_at:%Y-%m-%d %H:%M} UTC)."
        ],
        "stages": [
            {
                "key": "service",
                "order": 10,
                "name": "Service approval",
                "status": "active",
                "required": 2,
                "approvals": [],
            },
            {
                "key": "cab",
                "order": 20,
                "name": "CAB approval",
                "status": "waiting",
                "required": 1,
                "approvals": [],
            },
        ],
        "digest": production_release.digest,
    }


def test_a_partly_approved_gate_counts_the_approvals(production_release, approver, pipeline):
    factories.decide(production_release, approver)

    gate = pipeline.get(gate_url(production_release)).json()

    assert gate["status"] == "pending"
    assert gate["reasons"][0].startswith(
        "Waiting for Service approval: 1 of 2 approvals (eligible: alice, bob, due "
    )
    assert [a["user"] for a in gate["stages"][0]["approvals"]] == ["alice"]


def test_the_gate_is_approved_after_the_service_approvers_and_the_cab(approved_release, pipeline):
    approval = ApprovalRequest.objects.get(release=approved_release)

    gate = pipeline.get(gate_url(approved_release, approved_release.digest)).json()

    assert gate["status"] == "approved"
    assert gate["reasons"] == [f"Approved; valid until {approval.valid_until:%Y-%m-%d %H:%M} UTC."]
    assert approval.valid_until == approval.decided_at + timedelta(hours=72)
    assert [
        (s["name"], s["status"], [a["user"] for a in s["approvals"]]) for s in gate["stages"]
    ] == [
        ("Service approval", "approved", ["alice", "bob"]),
        ("CAB approval", "approved", ["carol"]),
    ]


@pytest.mark.parametrize("fixture", ["production_release", "approved_release"])
def test_another_digest_is_blocked(request, pipeline, fixture):
    release = request.getfixturevalue(fixture)
    other = factories.digest("a rebuilt image")

    response = pipeline.get(gate_url(release, other))

    assert response.status_code == 200
    assert response.json()["status"] == "blocked"
    assert response.json()["reasons"] == [
        f"Digest {other} is not the approved artifact ({release.digest}); "
        "a different digest needs a new approval request."
    ]


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:00", "sha256:" + "A" * 64, "%20"])
def test_a_malformed_digest_is_refused(production_release, pipeline, digest):
    response = pipeline.get(gate_url(production_release, digest))

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "digest must be 'sha256:' followed by 64 lowercase hex digits.",
            "fields": {"digest": ["Malformed digest."]},
        }
    }


def test_a_rejected_gate_says_who_rejected_and_why(production_release, approver, pipeline):
    decision = factories.decide(
        production_release, approver, "reject", "Migration 0042 has no rollback."
    )

    gate = pipeline.get(gate_url(production_release)).json()

    assert gate["status"] == "rejected"
    assert gate["reasons"] == [
        f"Rejected by alice at {decision.created_at:%Y-%m-%d %H:%M} UTC (Service approval): "
        "Migration 0042 has no rollback."
    ]
    assert [(s["name"], s["status"]) for s in gate["stages"]] == [
        ("Service approval", "rejected"),
        ("CAB approval", "cancelled"),
    ]


def test_a_pending_request_past_its_deadline_is_expired(production_release, pipeline):
    deadline = timezone.now() - timedelta(minutes=1)
    ApprovalRequest.objects.filter(release=production_release).update(expires_at=deadline)

    gate = pipeline.get(gate_url(production_release)).json()

    assert gate["status"] == "expired"
    assert gate["reasons"] == [
        f"No decision before {deadline:%Y-%m-%d %H:%M} UTC; the request expired."
    ]


def test_an_approval_past_its_validity_is_expired(approved_release, pipeline):
    valid_until = timezone.now() - timedelta(seconds=1)
    ApprovalRequest.objects.filter(release=approved_release).update(valid_until=valid_until)

    gate = pipeline.get(gate_url(approved_release, approved_release.digest)).json()

    assert gate["status"] == "expired"
    assert gate["reasons"] == [
        f"The approval was valid until {valid_until:%Y-%m-%d %H:%M} UTC; request a new approval."
    ]


def test_a_swept_expired_request_says_so(production_release, pipeline):
    ApprovalRequest.objects.filter(release=production_release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    services.expire_requests()

    gate = pipeline.get(gate_url(production_release)).json()

    assert gate["status"] == "expired"
    assert gate["reasons"] == ["The approval request expired; request a new approval."]


def test_cancelling_the_change_record_blocks_an_approved_release(
    approved_release, requester, pipeline
):
    set_change_state(
        change=approved_release.change,
        state="cancelled",
        actor=requester,
        reason="Postponed to next quarter.",
    )

    gate = pipeline.get(gate_url(approved_release)).json()

    assert gate["status"] == "blocked"
    # The service is SOX-scoped: its checklist holds the change record, and the reason says so.
    assert gate["reasons"] == [
        f"SOX: Change record {approved_release.change.ref} is cancelled; "
        "nothing of an ended change may be deployed."
    ]
    assert ApprovalRequest.objects.get(release=approved_release).status == "approved"


def test_failing_evidence_blocks_and_passing_evidence_approves_again(approved_release, pipeline):
    evidence_url = f"/api/v1/releases/{approved_release.pk}/evidence/"

    failed = pipeline.post(
        evidence_url, {"kind": "tests", "status": "failed", "summary": {"passed": 811, "failed": 1}}
    )
    red = pipeline.post(
        evidence_url, {"kind": "tests", "status": "passed", "summary": {"passed": 811, "failed": 1}}
    )
    green = pipeline.post(
        evidence_url, {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}
    )

    assert (failed.status_code, red.status_code, green.status_code) == (201, 201, 201)
    assert (failed.json()["status"], failed.json()["reasons"]) == (
        "blocked",
        ["Evidence 'tests' is 'failed'; the policy requires 'passed'."],
    )
    assert (red.json()["status"], red.json()["reasons"]) == (
        "blocked",
        ["Evidence 'tests' reports 1 failed; at most 0 allowed."],
    )
    assert green.json()["status"] == "approved"
    assert pipeline.get(gate_url(approved_release)).json()["status"] == "approved"


def test_evidence_without_a_failed_count_does_not_satisfy_max_failed(approved_release, pipeline):
    response = pipeline.post(
        f"/api/v1/releases/{approved_release.pk}/evidence/",
        {"kind": "tests", "status": "passed", "summary": {"passed": 812}},
    )

    assert response.json()["status"] == "blocked"
    assert response.json()["reasons"] == [
        "Evidence 'tests' does not report a 'failed' count; the policy requires one."
    ]


def test_a_release_without_required_evidence_is_blocked(
    org, service, production, pipeline_bot, pipeline
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, evidence=()), actor=pipeline_bot
    )

    gate = pipeline.get(gate_url(release)).json()

    assert gate["status"] == "blocked"
    assert gate["reasons"] == [
        "Missing required evidence: tests evidence with status 'passed', at least 1 passed and "
        "at most 0 failed.",
        "SOX: No evidence is attached to this release, so none is retained.",
    ]


def test_rejection_outranks_expiry(production_release, approver, pipeline):
    factories.decide(production_release, approver, "reject", "No.")
    ApprovalRequest.objects.filter(release=production_release).update(
        expires_at=timezone.now() - timedelta(days=1)
    )

    assert pipeline.get(gate_url(production_release)).json()["status"] == "rejected"


def count_gate_queries(client, release) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(gate_url(release, release.digest))
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("caller", ["pipeline_bot", "approver", "auditor"])
def test_the_gate_uses_a_constant_number_of_queries(
    request,
    production_release,
    service,
    low_tier_service,
    production,
    staging,
    pipeline_bot,
    approver,
    second_approver,
    cab_member,
    api,
    caller,
):
    client = api(request.getfixturevalue(caller))
    client.get(gate_url(production_release))  # The token's first use records last_used_at.
    factories.decide(production_release, approver)

    with_one_decision = count_gate_queries(client, production_release)

    factories.decide(production_release, second_approver)
    factories.decide(production_release, cab_member)
    for index in range(6):
        other, _ = services.request_approval(
            data=factories.release_input(
                service if index % 2 else low_tier_service, production if index % 3 else staging
            ),
            actor=pipeline_bot,
        )
        factories.decide(other, approver)
        services.add_evidence(
            release=production_release,
            actor=pipeline_bot,
            kind=f"scan-{index}",
            status="passed",
            summary={"critical": 0},
        )
    with_many = count_gate_queries(client, production_release)

    assert with_one_decision == with_many == GATE_QUERIES


def test_the_stored_snapshot_always_matches_the_rows_it_summarises(
    production_release, pipeline_bot, approver, second_approver, cab_member
):
    def assert_fresh() -> None:
        approval = ApprovalRequest.objects.get(release=production_release)
        assert approval.gate_snapshot == build_snapshot(approval)

    assert_fresh()
    services.add_evidence(
        release=production_release,
        actor=pipeline_bot,
        kind="tests",
        status="failed",
        summary={"passed": 3, "failed": 1},
    )
    assert_fresh()
    factories.decide(production_release, approver)
    assert_fresh()
    factories.decide(production_release, second_approver)
    assert_fresh()
    services.record_decision(
        release=production_release, actor=cab_member, verdict="reject", rationale="Failing tests"
    )
    assert_fresh()


def test_rebuild_gate_snapshots_repairs_a_lost_snapshot(production_release, approver):
    factories.decide(production_release, approver)
    expected = ApprovalRequest.objects.get(release=production_release).gate_snapshot
    ApprovalRequest.objects.filter(release=production_release).update(gate_snapshot={})
    call_command("rebuild_gate_snapshots", "--missing", stdout=io.StringIO())
    assert ApprovalRequest.objects.get(release=production_release).gate_snapshot == expected


@pytest.mark.parametrize("stored", [True, -5, "0"], ids=["boolean", "negative", "text"])
def test_a_stored_count_that_is_no_whole_number_never_satisfies_max_failed(
    approved_release, pipeline, stored
):
    # Rows written before the API refused such counts, or by other means: still no count.
    evidence = Evidence.objects.create(
        release=approved_release,
        kind="tests",
        status="passed",
        summary={"passed": 10, "failed": stored},
        reported_by=approved_release.requested_by,
    )
    refresh_snapshot(approved_release.approval)

    assert evidence.failed_count is None
    gate = pipeline.get(gate_url(approved_release)).json()
    assert gate["status"] == "blocked"
    assert gate["reasons"] == [
        "Evidence 'tests' does not report a 'failed' count; the policy requires one."
    ]


def test_the_gate_row_loads_what_the_orm_loads(production_release, approver):
    factories.decide(production_release, approver)
    by_orm = Release.objects.for_gate().get(pk=production_release.pk)

    by_row = Release.objects.gate_row(production_release.pk)

    assert evaluate_gate(by_row).as_dict() == evaluate_gate(by_orm).as_dict()
    for path in (
        "digest",
        "service_id",
        "environment.risk",
        "change.ref",
        "change.state",
        "change.type",
        "change.incident_id",
        "approval.status",
        "approval.plan",
        "approval.expires_at",
        "approval.valid_until",
        "approval.gate_snapshot",
    ):
        first, *rest = path.split(".")
        orm, row = getattr(by_orm, first), getattr(by_row, first)
        for name in rest:
            orm, row = getattr(orm, name), getattr(row, name)
        assert row == orm, path
    assert by_row.approval.release is by_row
    assert Release.objects.gate_row(production_release.pk + 1000) is None


def test_the_gate_of_an_id_beyond_any_release_is_not_found(api, pipeline_bot, production_release):
    response = api(pipeline_bot).get("/api/v1/releases/946889901168831611686354944/gate")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert Release.objects.gate_row(2**63) is None


def test_a_pipeline_scoped_to_one_service_gets_the_same_answer(
    api, production_release, pipeline_bot, service
):
    scoped = factories.UserFactory(username="payments-ci", is_service_account=True)
    factories.grant(scoped, "release_manager", service)

    everywhere = api(pipeline_bot).get(gate_url(production_release)).json()
    one_service = api(scoped).get(gate_url(production_release)).json()

    assert one_service == everywhere
