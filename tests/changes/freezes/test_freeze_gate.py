"""What a freeze does to a release: hard freezes block the gate (emergencies inside their
exception and confirmed overrides pass), soft freezes add a release manager's approval."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.gate import evaluate_gate
from approvals.models import ApprovalStage, Release
from changes.freezes.exceptions import FreezeForbidden, InvalidFreeze
from changes.freezes.services import (
    confirm_override,
    end_freeze,
    freeze_blockers,
    request_override,
)
from changes.models import FreezeOverride
from governance.models import LedgerEntry, Notification
from tests import factories
from tests.approvals.emergencies.helpers import declare_for


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


def gate(release: Release, now=None):
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk), now=now)


def test_a_hard_freeze_blocks_the_gate_naming_the_freeze_and_its_end(approved_release, make_freeze):
    freeze = make_freeze(name="Year-end freeze", time_zone="UTC")

    result = gate(approved_release)

    assert result.status == "blocked"
    assert result.reasons == [
        f"Hard freeze 'Year-end freeze' holds releases until {freeze.ends_at:%Y-%m-%d %H:%M} UTC; "
        "only an emergency change inside its exception or an override confirmed by two "
        "administrators pass."
    ]


def test_the_reason_gives_local_time_with_its_zone_and_utc(approved_release, make_freeze):
    now = timezone.now().replace(microsecond=0)
    local = now.astimezone(timezone.get_default_timezone()).replace(tzinfo=None)
    from zoneinfo import ZoneInfo

    tokyo = now.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None)
    freeze = make_freeze(
        time_zone="Asia/Tokyo",
        local_start=tokyo - timedelta(hours=1),
        local_end=tokyo + timedelta(hours=3),
    )
    assert local  # the default zone plays no part: the freeze's own does

    (reason,) = gate(approved_release).reasons

    end = freeze.ends_at
    assert (
        f"until {end.astimezone(ZoneInfo('Asia/Tokyo')):%Y-%m-%d %H:%M} Asia/Tokyo "
        f"({end:%Y-%m-%d %H:%M} UTC)" in reason
    )


def test_the_gate_opens_by_itself_when_the_freeze_ends(approved_release, make_freeze):
    freeze = make_freeze(hours_after=2)

    assert gate(approved_release).status == "blocked"
    assert gate(approved_release, now=freeze.ends_at + timedelta(seconds=1)).status == "approved"


def test_an_approval_that_expired_during_the_freeze_stays_expired(approved_release, make_freeze):
    freeze = make_freeze(hours_after=100)  # production approvals are valid for 72 hours

    result = gate(approved_release, now=freeze.ends_at + timedelta(minutes=1))

    assert result.status == "expired"


def test_emergency_changes_pass_a_hard_freeze_only_inside_their_exception(
    org, service, production, pipeline_bot, make_freeze, approver
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, change_type="emergency"),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)
    make_freeze(hours_after=12)
    assert gate(release).status == "blocked"  # an emergency change never declared
    declared_at = timezone.now()
    declare_for(release, hours=4, now=declared_at)

    assert gate(release, now=declared_at + timedelta(hours=1)).status == "approved"
    after = gate(release, now=declared_at + timedelta(hours=4))
    assert after.status == "blocked"
    assert after.reasons[1].startswith("Hard freeze 'Release freeze' holds releases until")


def test_a_freeze_elsewhere_does_not_block(
    approved_release, make_freeze, staging, low_tier_service, other_service, team
):
    make_freeze(environments=[staging])
    make_freeze(services=[low_tier_service])
    other_team = factories.TeamFactory(slug="web")
    make_freeze(teams=[other_team])
    make_freeze(kind="soft")
    ended = make_freeze()
    end_freeze(freeze=ended, actor=ended.created_by, reason="Close done early")

    assert gate(approved_release).status == "approved"
    make_freeze(teams=[team])
    assert gate(approved_release).status == "blocked"


def test_a_recurring_freeze_blocks_only_during_its_occurrences(approved_release, make_freeze):
    freeze = make_freeze(hours_before=1, hours_after=1, recurrence="FREQ=DAILY")

    assert gate(approved_release).status == "blocked"
    assert gate(approved_release, now=freeze.ends_at + timedelta(hours=1)).status == "approved"
    assert gate(approved_release, now=freeze.starts_at + timedelta(days=1)).status == "blocked"


def test_decisions_are_accepted_during_a_freeze_and_count_when_it_ends(
    production_release, approver, second_approver, cab_member, make_freeze
):
    freeze = make_freeze()
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)

    assert gate(production_release).status == "blocked"
    assert gate(production_release, now=freeze.ends_at).status == "approved"


# --- Overrides: four eyes, expiry, ledger --------------------------------------------------


def test_an_override_needs_a_second_administrator_and_lets_that_release_through(
    approved_release, make_freeze, administrator, second_administrator
):
    freeze = make_freeze()
    override = request_override(
        freeze=freeze,
        release=approved_release,
        actor=administrator,
        reason="Fix for the checkout outage",
        hours=4,
    )
    assert gate(approved_release).status == "blocked"

    with pytest.raises(FreezeForbidden):
        confirm_override(override=override, actor=administrator)
    assert gate(approved_release).status == "blocked"

    confirm_override(override=override, actor=second_administrator)

    assert gate(approved_release).status == "approved"
    kinds = list(
        LedgerEntry.objects.filter(subject=f"release:{approved_release.pk}")
        .filter(kind__startswith="freeze.")
        .values_list("kind", "actor")
    )
    assert kinds == [("freeze.override_requested", "ada"), ("freeze.override_confirmed", "gus")]


def test_an_override_expires(approved_release, make_freeze, administrator, second_administrator):
    freeze = make_freeze(hours_after=10)
    override = request_override(
        freeze=freeze,
        release=approved_release,
        actor=administrator,
        reason="Hotfix",
        hours=2,
    )
    confirm_override(override=override, actor=second_administrator)

    later = override.expires_at + timedelta(seconds=1)

    assert gate(approved_release, now=later).status == "blocked"


def test_an_override_holds_only_for_its_release(
    approved_release, make_freeze, administrator, second_administrator, service, pipeline_bot
):
    freeze = make_freeze()
    another, _ = services.request_approval(
        data=factories.release_input(service, approved_release.environment), actor=pipeline_bot
    )
    override = request_override(
        freeze=freeze,
        release=another,
        actor=administrator,
        reason="Other release",
        hours=2,
    )
    confirm_override(override=override, actor=second_administrator)

    assert gate(approved_release).status == "blocked"


def test_an_expired_override_cannot_be_confirmed(
    approved_release, make_freeze, administrator, second_administrator
):
    freeze = make_freeze()
    override = request_override(
        freeze=freeze,
        release=approved_release,
        actor=administrator,
        reason="Hotfix",
        hours=1,
    )
    ledger = LedgerEntry.objects.count()

    with pytest.raises(Exception, match="expired"):
        confirm_override(
            override=override,
            actor=second_administrator,
            now=override.expires_at + timedelta(seconds=1),
        )

    assert FreezeOverride.objects.get().confirmed_at is None
    assert LedgerEntry.objects.count() == ledger


@pytest.mark.parametrize(("reason", "hours"), [("", 2), ("  ", 2), ("ok", 0), ("ok", 73)])
def test_a_bad_override_request_writes_nothing(
    approved_release, make_freeze, administrator, reason, hours
):
    freeze = make_freeze()
    ledger = LedgerEntry.objects.count()

    with pytest.raises(InvalidFreeze):
        request_override(
            freeze=freeze,
            release=approved_release,
            actor=administrator,
            reason=reason,
            hours=hours,
        )

    assert FreezeOverride.objects.count() == 0
    assert LedgerEntry.objects.count() == ledger


def test_an_approver_cannot_ask_for_or_confirm_an_override(
    approved_release, make_freeze, administrator, approver
):
    freeze = make_freeze()
    with pytest.raises(FreezeForbidden):
        request_override(
            freeze=freeze,
            release=approved_release,
            actor=approver,
            reason="Please",
            hours=2,
        )
    override = request_override(
        freeze=freeze,
        release=approved_release,
        actor=administrator,
        reason="Hotfix",
        hours=2,
    )
    with pytest.raises(FreezeForbidden):
        confirm_override(override=override, actor=approver)
    assert FreezeOverride.objects.get().confirmed_at is None


def test_only_a_hard_freeze_covering_the_release_can_be_overridden(
    approved_release, make_freeze, administrator, staging
):
    elsewhere = make_freeze(environments=[staging])
    soft = make_freeze(kind="soft")
    ended = make_freeze()
    end_freeze(freeze=ended, actor=administrator, reason="Done")
    ledger = LedgerEntry.objects.count()

    for freeze in (elsewhere, soft, ended):
        with pytest.raises(InvalidFreeze, match="does not hold this release back"):
            request_override(
                freeze=freeze, release=approved_release, actor=administrator, reason="x", hours=2
            )

    assert FreezeOverride.objects.count() == 0
    assert LedgerEntry.objects.count() == ledger


# --- Soft freezes: an extra stage at planning time -----------------------------------------


def test_a_soft_freeze_adds_a_release_manager_stage_to_the_plan(
    org, service, production, pipeline_bot, make_freeze, release_manager
):
    make_freeze(kind="soft", name="Quarter close")

    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )

    stages = list(release.approval.stages.order_by("position"))
    assert [(s.key, s.approvers, s.required_count) for s in stages] == [
        ("service", "service_approvers", 2),
        ("freeze", "release_managers", 1),
        ("cab", "cab", 1),
    ]
    # dave asked for it, so only rita, the other release manager, may give that approval.
    assert [u.username for u in stages[1].eligible_approvers.all()] == ["rita"]
    assert "soft-freeze" in [rule["id"] for rule in release.approval.plan["matched_rules"]]
    assert gate(release).status == "pending"


def test_the_release_manager_approves_the_freeze_stage(
    org,
    service,
    production,
    pipeline_bot,
    make_freeze,
    release_manager,
    approver,
    second_approver,
    cab_member,
):
    make_freeze(kind="soft")
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    for person in (approver, second_approver, release_manager, cab_member):
        factories.decide(release, person)

    assert ApprovalStage.objects.get(request__release=release, key="freeze").status == "approved"
    assert gate(release).status == "approved"


def test_no_extra_stage_outside_a_soft_freeze_or_for_emergencies(
    org, service, production, pipeline_bot, make_freeze, release_manager
):
    make_freeze(kind="soft", hours_before=-1, hours_after=3)  # starts in an hour
    normal, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )
    make_freeze(kind="soft")
    emergency, _ = services.request_approval(
        data=factories.release_input(service, production, change_type="emergency"),
        actor=pipeline_bot,
    )

    assert not normal.approval.stages.filter(key="freeze").exists()
    assert not emergency.approval.stages.filter(key="freeze").exists()


# --- Cost: the freeze check is one query, whatever the number of freezes -------------------


def test_the_freeze_check_is_one_query_and_the_gate_stays_constant(
    approved_release,
    make_freeze,
    administrator,
    second_administrator,
    staging,
    production,
    django_assert_num_queries,
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_freeze(environments=[staging])
    release = Release.objects.for_gate().get(pk=approved_release.pk)
    with django_assert_num_queries(FREEZE_CHECK_QUERIES):
        freeze_blockers(release, timezone.now())
    with CaptureQueriesContext(connection) as few:
        evaluate_gate(release)

    for index in range(25):
        freeze = make_freeze(
            kind="hard" if index % 2 else "soft",
            environments=[production, staging],
            recurrence="FREQ=DAILY" if index % 3 else "",
        )
        if freeze.kind == "soft":
            continue  # soft freezes do not block, so they are not overridden
        override = request_override(
            freeze=freeze,
            release=approved_release,
            actor=administrator,
            reason="Load",
            hours=2,
        )
        confirm_override(override=override, actor=second_administrator)
    release = Release.objects.for_gate().get(pk=approved_release.pk)

    with django_assert_num_queries(FREEZE_CHECK_QUERIES):
        freeze_blockers(release, timezone.now())
    with django_assert_num_queries(len(few)):
        result = evaluate_gate(release)

    assert result.status == "approved"  # every hard freeze overridden for this release


# freeze_blockers on a release read with for_gate(): the freezes with their override flag.
FREEZE_CHECK_QUERIES = 1


def test_the_other_administrators_hear_of_an_override_waiting_for_them(
    approved_release, make_freeze, administrator, second_administrator
):
    request_override(
        freeze=make_freeze(),
        release=approved_release,
        actor=administrator,
        reason="Fix for the checkout outage",
        hours=4,
    )

    notes = Notification.objects.filter(subject__startswith="Override waiting for you")
    assert [n.recipient for n in notes] == [second_administrator]  # not the one who asked
    assert "Fix for the checkout outage" in notes.get().body
