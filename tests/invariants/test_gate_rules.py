"""The gate's edges (`approvals/gate.py`) that mutation testing showed no test pinned down;
each test names the rule it holds."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.gate import (
    build_snapshot,
    evaluate_gate,
    rebuild_snapshots,
    refresh_snapshot,
    refresh_stage_snapshots,
)
from approvals.models import ApprovalRequest, ApprovalStage, Release
from tests import factories

pytestmark = pytest.mark.django_db


def gate_at(release: Release, now) -> tuple[str, list[str]]:
    result = evaluate_gate(Release.objects.for_gate().get(pk=release.pk), now=now)
    return result.status, result.reasons


def test_a_pending_request_is_expired_at_the_very_moment_of_its_deadline(production_release):
    deadline = ApprovalRequest.objects.get(release=production_release).expires_at

    assert gate_at(production_release, deadline)[0] == "expired"


def test_an_approval_is_expired_at_the_very_moment_its_validity_ends(
    production_release, approver, second_approver, cab_member
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    valid_until = ApprovalRequest.objects.get(release=production_release).valid_until

    assert gate_at(production_release, valid_until)[0] == "expired"


def test_a_request_without_a_snapshot_yet_still_gets_an_answer(production_release):
    """Rows imported by other means have no snapshot until rebuild_gate_snapshots runs."""
    ApprovalRequest.objects.filter(release=production_release).update(gate_snapshot={})

    release = Release.objects.for_gate().get(pk=production_release.pk)
    result = evaluate_gate(release)

    # No stages to show and no evidence on record yet: blocked, saying what is missing.
    assert (result.status, result.stages) == ("blocked", [])
    assert result.reasons[0].startswith("Missing required evidence")


def test_a_rejected_request_without_a_snapshot_yet_is_rejected(production_release, approver):
    factories.decide(production_release, approver, verdict="reject", rationale="No.")
    ApprovalRequest.objects.filter(release=production_release).update(gate_snapshot={})

    release = Release.objects.for_gate().get(pk=production_release.pk)
    result = evaluate_gate(release)

    assert (result.status, result.reasons) == ("rejected", [])


def test_snapshots_are_rebuilt_for_every_request_whatever_the_batch(
    org, service, staging, production, pipeline_bot
):
    for environment in (staging, production, staging):
        services.request_approval(
            data=factories.release_input(service, environment), actor=pipeline_bot
        )
    expected = {a.pk: build_snapshot(a) for a in ApprovalRequest.objects.all()}
    ApprovalRequest.objects.update(gate_snapshot={})

    count = rebuild_snapshots(ApprovalRequest.objects.all(), batch=2)

    assert count == 3
    assert {a.pk: a.gate_snapshot for a in ApprovalRequest.objects.all()} == expected


def test_another_digest_is_named_first_among_the_reasons(
    production_release, approver, second_approver, cab_member
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    services.add_evidence(
        release=production_release,
        actor=production_release.requested_by,
        kind="tests",
        status="failed",
        summary={"failed": 3},
    )

    result = evaluate_gate(
        Release.objects.for_gate().get(pk=production_release.pk), digest=factories.digest("x")
    )

    assert result.status == "blocked" and len(result.reasons) == 2
    assert "is not the approved artifact" in result.reasons[0]


def waiting_of(release: Release) -> str:
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).reasons[0]


def test_a_stage_nobody_may_decide_says_to_ask_an_administrator(production_release):
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    stage.eligible_approvers.clear()
    refresh_snapshot(stage.request)

    assert waiting_of(production_release) == (
        "Waiting for Service approval: 0 of 2 approvals "
        "(eligible: nobody is eligible; ask an administrator, due "
        f"{stage.due_at:%Y-%m-%d %H:%M} UTC)."
    )


def test_a_stage_without_a_due_time_names_none(production_release):
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    ApprovalStage.objects.filter(pk=stage.pk).update(due_at=None)
    refresh_snapshot(stage.request)

    assert waiting_of(production_release) == (
        "Waiting for Service approval: 0 of 2 approvals (eligible: alice, bob)."
    )


def test_a_stage_waiting_for_a_team_keeps_its_due_time(production_release):
    stage = ApprovalStage.objects.get(request__release=production_release, key="service")
    ApprovalStage.objects.filter(pk=stage.pk).update(team_rule="each", teams_required=["payments"])
    refresh_snapshot(stage.request)

    assert waiting_of(production_release) == (
        "Waiting for Service approval: 0 of 2 approvals (eligible: alice, bob, due "
        f"{stage.due_at:%Y-%m-%d %H:%M} UTC; still needs an approval from team(s): payments)."
    )


def test_a_snapshot_written_before_stages_had_keys_answers_in_stage_order(production_release):
    """Older snapshots' stages carry neither key nor order: they ran one after another, so the
    gate numbers them from 1 and leaves the key empty."""
    approval = ApprovalRequest.objects.get(release=production_release)
    snapshot = approval.gate_snapshot
    for stage in snapshot["stages"]:
        del stage["key"], stage["order"]
    ApprovalRequest.objects.filter(pk=approval.pk).update(gate_snapshot=snapshot)

    result = evaluate_gate(Release.objects.for_gate().get(pk=production_release.pk))

    assert len(result.stages) >= 2
    assert [(s["key"], s["order"]) for s in result.stages] == [
        ("", position) for position in range(1, len(result.stages) + 1)
    ]


def stale_snapshot(release: Release) -> tuple[ApprovalRequest, ApprovalStage]:
    """The request's snapshot with its first stage's entry out of date (a sweep changed who may
    decide it) and a mark elsewhere that only a whole rebuild would wipe."""
    approval = ApprovalRequest.objects.get(release=release)
    snapshot = approval.gate_snapshot
    snapshot["stages"][0]["waiting"] = "out of date"
    snapshot["stages"][1]["waiting"] = "left as it was"
    ApprovalRequest.objects.filter(pk=approval.pk).update(gate_snapshot=snapshot)
    stage = ApprovalStage.objects.get(request=approval, key=snapshot["stages"][0]["key"])
    return approval, stage


def test_refreshing_a_stage_rewrites_that_stages_entry_and_leaves_the_rest(
    production_release, django_assert_num_queries
):
    """The escalation sweep refreshes thousands of stages: each is rewritten in place, in a
    fixed number of queries, never by rebuilding whole snapshots."""
    approval, stage = stale_snapshot(production_release)

    # The stages, their decisions, their eligible people, the requests, one UPDATE batch.
    with django_assert_num_queries(5):
        refresh_stage_snapshots([stage.pk])

    after = ApprovalRequest.objects.get(pk=approval.pk).gate_snapshot
    assert after["stages"][1]["waiting"] == "left as it was"
    refresh_snapshot(approval)
    rebuilt = ApprovalRequest.objects.get(pk=approval.pk).gate_snapshot
    assert after["stages"][0] == rebuilt["stages"][0]
    assert after["stages"][0]["waiting"].startswith(f"Waiting for {stage.name}: 0 of ")


@pytest.mark.parametrize("legacy", ["no key", "renamed"])
def test_a_stage_entry_not_found_by_key_and_name_rebuilds_the_whole_snapshot(
    production_release, legacy
):
    approval, stage = stale_snapshot(production_release)
    snapshot = ApprovalRequest.objects.get(pk=approval.pk).gate_snapshot
    if legacy == "no key":
        del snapshot["stages"][0]["key"]
    else:
        snapshot["stages"][0]["name"] = "An older name"
    ApprovalRequest.objects.filter(pk=approval.pk).update(gate_snapshot=snapshot)

    refresh_stage_snapshots([stage.pk])

    after = ApprovalRequest.objects.get(pk=approval.pk).gate_snapshot
    refresh_snapshot(approval)
    assert after == ApprovalRequest.objects.get(pk=approval.pk).gate_snapshot
    assert after["stages"][1]["waiting"] != "left as it was"
