"""The gate and the emergency exception: an emergency change passes hard freezes and incident
holds only while its exception is in force; outside it, its releases are blocked."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.emergencies.services import end_emergency
from approvals.gate import evaluate_gate
from approvals.models import Release
from tests.approvals.emergencies.conftest import open_incident
from tests.approvals.emergencies.helpers import declare_for, declarer_for


def gate(release: Release, now=None):
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk), now=now)


def test_an_emergency_release_passes_a_hard_freeze_only_inside_its_exception(
    emergency_release, hard_freeze
):
    hard_freeze(hours_after=12)
    declared_at = timezone.now()
    emergency = declare_for(emergency_release, hours=4, now=declared_at)

    inside = gate(emergency_release, now=declared_at + timedelta(hours=3, minutes=59))
    after = gate(emergency_release, now=declared_at + timedelta(hours=4))

    assert inside.status == "approved"
    assert after.status == "blocked"
    assert after.reasons[0] == (
        f"The emergency exception for {emergency_release.change.ref} ended at "
        f"{emergency.ends_at:%Y-%m-%d %H:%M} UTC; releases after it need the normal path: "
        "request under a normal change, or declare a new emergency."
    )
    assert after.reasons[1].startswith("Hard freeze 'Quarter close' holds releases until")


def test_an_emergency_release_passes_any_incident_hold_only_inside_its_exception(
    emergency_release, service
):
    named = open_incident(service, external_id="INC-NAMED")
    other = open_incident(service, external_id="INC-OTHER")
    declared_at = timezone.now()
    declare_for(emergency_release, hours=2, now=declared_at, incident=named)

    inside = gate(emergency_release, now=declared_at + timedelta(hours=1))
    after = gate(emergency_release, now=declared_at + timedelta(hours=2, seconds=1))

    assert inside.status == "approved"
    assert after.status == "blocked"
    assert len(after.reasons) == 3  # the ended exception, then both incidents
    assert "INC-NAMED" in after.reasons[1] or "INC-NAMED" in after.reasons[2]
    assert any(other.external_id in reason for reason in after.reasons)


def test_an_emergency_change_never_declared_is_blocked_with_a_way_forward(emergency_release):
    answer = gate(emergency_release)

    assert answer.status == "blocked"
    assert answer.reasons == [
        f"Change {emergency_release.change.ref} is an emergency change without a declared "
        "emergency; declare the emergency (it grants a time-bound exception) or request under "
        "a normal change."
    ]


def test_an_emergency_ended_early_blocks_at_once(emergency_release, hard_freeze):
    hard_freeze()
    emergency = declare_for(emergency_release)
    assert gate(emergency_release).status == "approved"

    end_emergency(
        emergency=emergency, actor=declarer_for(emergency_release), reason="Fixed and verified."
    )

    answer = gate(emergency_release)
    assert answer.status == "blocked"
    assert answer.reasons[0].startswith(
        f"The emergency exception for {emergency_release.change.ref} ended at"
    )


def test_a_normal_release_is_still_held_by_a_hard_freeze_and_an_incident(
    production_release, approver, second_approver, cab_member, hard_freeze, service
):
    from tests import factories

    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    assert gate(production_release).status == "approved"
    hard_freeze()
    open_incident(service)

    answer = gate(production_release)

    assert answer.status == "blocked"
    assert len(answer.reasons) == 2


def test_the_exception_costs_one_query_and_only_for_emergency_changes(
    production_release, emergency_release
):
    declared_at = timezone.now()
    declare_for(emergency_release, hours=1, now=declared_at)
    release = Release.objects.for_gate().get(pk=emergency_release.pk)
    with CaptureQueriesContext(connection) as normal:
        evaluate_gate(Release.objects.for_gate().get(pk=production_release.pk))
    with CaptureQueriesContext(connection) as inside:
        evaluate_gate(release, now=declared_at)
    with CaptureQueriesContext(connection) as after:
        evaluate_gate(release, now=declared_at + timedelta(hours=2))

    # The normal release: its row, then the incident and freeze checks.
    assert len(normal) == 3
    # Inside: the row was read already; the exception passes both checks, so they are skipped.
    assert len(inside) == 1
    assert "emergencyexception" in inside.captured_queries[0]["sql"]
    # After: the exception, then the incident and freeze checks as for any release.
    assert len(after) == 3


def test_an_emergency_release_before_its_exception_starts_is_held_saying_when_it_starts(
    emergency_release,
):
    starts = timezone.now() + timedelta(hours=1)
    emergency = declare_for(emergency_release, hours=2, now=starts)

    answer = gate(emergency_release, now=starts - timedelta(minutes=1))

    assert answer.status == "blocked"
    assert answer.reasons[0] == (
        f"The emergency exception for {emergency_release.change.ref} starts at "
        f"{emergency.starts_at:%Y-%m-%d %H:%M} UTC; releases before it are held."
    )
