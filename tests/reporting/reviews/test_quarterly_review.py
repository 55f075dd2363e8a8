"""The quarterly review: what it lists, who records outcomes, segregation of duties, closing."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from governance.models import LedgerEntry, Notification, Role
from reporting.reviews import services
from reporting.reviews.models import QuarterlyReview, QuarterlyReviewItem
from reporting.reviews.tasks import start_quarterly_review_task
from tests import factories
from tests.reporting.reviews.conftest import REVIEW_DAY

pytestmark = pytest.mark.django_db
Kind, Outcome = QuarterlyReviewItem.Kind, QuarterlyReviewItem.Outcome


@pytest.fixture
def review(quarter, administrator) -> QuarterlyReview:
    started, created = services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 7, 1), now=REVIEW_DAY
    )
    assert created
    return started


def item_of(review, kind, source_id=None) -> QuarterlyReviewItem:
    items = review.items.filter(kind=kind)
    return items.get(source_id=source_id) if source_id else items.get()


def snapshot(review) -> list:
    """Everything a refused attempt must leave as it was."""
    items = list(review.items.order_by("pk").values_list("outcome", "note", "decided_by_id"))
    fresh = QuarterlyReview.objects.get(pk=review.pk)
    return [items, fresh.closed_at, LedgerEntry.objects.count()]


# --- Starting ---------------------------------------------------------------------------------


def test_the_review_lists_the_quarters_acts_of_each_kind_and_nothing_else(review, quarter):
    counts = {kind: review.items.filter(kind=kind).count() for kind in Kind.values}
    assert counts == {
        Kind.FREEZE_OVERRIDE: 1,
        Kind.EMERGENCY: 2,
        Kind.LATE_POST_MORTEM: 2,
        Kind.UNAPPROVED_DEPLOYMENT: 1,
    }
    assert review.name == "Quarterly review 2026 Q3"
    assert item_of(review, Kind.FREEZE_OVERRIDE).source_id == quarter["override"].pk
    assert set(review.items.filter(kind=Kind.EMERGENCY).values_list("source_id", flat=True)) == {
        e.pk for e in quarter["emergencies"]
    }
    deployed = item_of(review, Kind.UNAPPROVED_DEPLOYMENT)
    assert deployed.source_id == quarter["release"].pk
    assert deployed.detail.startswith("2 deployments the gate had not approved")
    late, still_open = quarter["post_mortems"]
    assert item_of(review, Kind.LATE_POST_MORTEM, late.pk).detail == (
        "Due 2026-07-21; completed 2026-07-23, 2 days late."
    )
    assert item_of(review, Kind.LATE_POST_MORTEM, still_open.pk).detail.endswith("still open.")
    assert not review.items.exclude(outcome=Outcome.PENDING).exists()


def test_each_item_names_the_people_whose_act_it_is(
    review, requester, administrator, second_administrator, pipeline_bot, approver
):
    override = item_of(review, Kind.FREEZE_OVERRIDE)
    assert set(override.involved) == {
        administrator.pk,
        second_administrator.pk,
        pipeline_bot.pk,
        requester.pk,
    }
    emergencies = {i.involved_names for i in review.items.filter(kind=Kind.EMERGENCY)}
    assert emergencies == {"dave", "alice"}
    # Whoever reported an unapproved deployment deployed it, beside who asked and triggered.
    deployed = item_of(review, Kind.UNAPPROVED_DEPLOYMENT)
    assert approver.pk in deployed.involved


def test_administrators_and_the_cab_hear_that_the_review_is_open(review, cab_member):
    told = Notification.objects.filter(
        subject="Quarterly review 2026 Q3 is open: 6 items to review"
    )
    # ada started it herself; root (the other administrator) and carol are told
    assert sorted(told.values_list("recipient__username", flat=True)) == ["carol", "root"]
    assert told.first().url == f"/reviews/{review.pk}/"


def test_starting_twice_is_the_same_review_and_one_ledger_entry(review, administrator):
    again, created = services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 8, 15), now=REVIEW_DAY
    )
    assert (again.pk, created) == (review.pk, False)
    assert QuarterlyReview.objects.count() == 1
    assert review.items.count() == 6
    started = LedgerEntry.objects.filter(kind="quarterly_review.started")
    assert started.count() == 1
    assert started.get().payload["items"] == {
        "freeze_override": 1,
        "emergency": 2,
        "late_post_mortem": 2,
        "unapproved_deployment": 1,
    }


def test_the_beat_task_starts_the_last_quarter_once(org):
    first = start_quarterly_review_task()
    second = start_quarterly_review_task()
    assert first == second
    review = QuarterlyReview.objects.get()
    assert review.quarter_start == services.previous_quarter(timezone.now().date())
    assert review.started_by is None
    assert LedgerEntry.objects.get(kind="quarterly_review.started").actor == "system"


def test_a_quarter_not_yet_ended_cannot_be_reviewed(org, administrator):
    with pytest.raises(services.InvalidReview, match="has not ended yet"):
        services.start_quarterly_review(
            actor=administrator, quarter=date(2026, 10, 1), now=REVIEW_DAY
        )
    assert not QuarterlyReview.objects.exists()


def test_only_administrators_start_a_review(org, cab_member):
    with pytest.raises(services.PermissionDenied):
        services.start_quarterly_review(actor=cab_member, quarter=date(2026, 7, 1), now=REVIEW_DAY)
    assert not QuarterlyReview.objects.exists()


# --- Outcomes ---------------------------------------------------------------------------------


def test_a_cab_member_records_an_outcome_and_the_ledger_has_it(review, cab_member):
    item = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    services.record_outcome(
        item=item, outcome="follow_up", note="Runbook for 500s", actor=cab_member
    )
    item.refresh_from_db()
    assert (item.outcome, item.note, item.decided_by) == (
        "follow_up",
        "Runbook for 500s",
        cab_member,
    )
    entry = LedgerEntry.objects.filter(kind="quarterly_review.outcome_recorded").get()
    assert entry.actor == "carol"
    assert entry.payload == {
        "item": item.label,
        "kind": "emergency",
        "outcome": "follow_up",
        "note": "Runbook for 500s",
    }


@pytest.mark.parametrize("outcome", ["follow_up", "control_changed"])
def test_follow_up_and_control_changed_need_a_note(review, cab_member, outcome):
    item = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    before = snapshot(review)
    with pytest.raises(services.InvalidReview, match="in the note"):
        services.record_outcome(item=item, outcome=outcome, note="  ", actor=cab_member)
    assert snapshot(review) == before


def test_accepted_needs_no_note(review, cab_member):
    item = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    services.record_outcome(item=item, outcome="accepted", note="", actor=cab_member)
    assert QuarterlyReviewItem.objects.get(pk=item.pk).outcome == "accepted"


def test_nobody_records_the_outcome_of_their_own_emergency(review, approver, administrator):
    # alice declared the web-frontend emergency: sitting on the CAB does not let her judge it
    factories.grant(approver, Role.CAB_MEMBER)
    own = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    before = snapshot(review)
    with pytest.raises(services.PermissionDenied, match="their own act"):
        services.record_outcome(item=own, outcome="accepted", note="", actor=approver)
    assert snapshot(review) == before


def test_nobody_records_the_outcome_of_an_exception_they_asked_for(review, administrator):
    own = item_of(review, Kind.FREEZE_OVERRIDE)
    before = snapshot(review)
    with pytest.raises(services.PermissionDenied, match="their own act"):
        services.record_outcome(item=own, outcome="accepted", note="", actor=administrator)
    assert snapshot(review) == before


@pytest.mark.parametrize("fixture", ["auditor", "requester", "security_approver", "outsider"])
def test_others_record_no_outcome(review, request, fixture):
    person = request.getfixturevalue(fixture)
    item = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    before = snapshot(review)
    with pytest.raises(services.PermissionDenied):
        services.record_outcome(item=item, outcome="accepted", note="", actor=person)
    assert snapshot(review) == before


def test_an_outcome_is_recorded_once(review, cab_member, administrator):
    item = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    services.record_outcome(item=item, outcome="accepted", note="", actor=cab_member)
    before = snapshot(review)
    with pytest.raises(services.ReviewConflict, match="carol already recorded"):
        services.record_outcome(item=item, outcome="follow_up", note="x", actor=administrator)
    assert snapshot(review) == before


def test_the_last_outcome_closes_the_review(review, cab_member):
    for item in review.items.order_by("pk"):
        services.record_outcome(item=item, outcome="accepted", note="", actor=cab_member)
    review.refresh_from_db()
    assert review.is_closed and review.left_open == []
    assert review.closing_note == "Every item has an outcome."
    assert LedgerEntry.objects.filter(kind="quarterly_review.closed").count() == 1


def test_an_administrator_closes_with_open_items_named(review, administrator, cab_member):
    done = review.items.filter(kind=Kind.EMERGENCY, involved_names="alice").get()
    services.record_outcome(item=done, outcome="accepted", note="", actor=cab_member)
    services.close_review(review=review, note="Auditors need it now", actor=administrator)
    review.refresh_from_db()
    assert review.is_closed and review.closed_by == administrator
    assert len(review.left_open) == 5
    assert "Emergency bypass: CHG-E1 · payments-api" in review.left_open
    entry = LedgerEntry.objects.get(kind="quarterly_review.closed")
    assert entry.payload == {"note": "Auditors need it now", "left_open": review.left_open}
    pending = review.items.filter(outcome=Outcome.PENDING).first()
    with pytest.raises(services.ReviewConflict, match="closed"):
        services.record_outcome(item=pending, outcome="accepted", note="", actor=cab_member)


def test_closing_needs_an_administrator_and_a_note(review, cab_member, administrator):
    before = snapshot(review)
    with pytest.raises(services.PermissionDenied):
        services.close_review(review=review, note="done", actor=cab_member)
    with pytest.raises(services.InvalidReview):
        services.close_review(review=review, note=" ", actor=administrator)
    assert snapshot(review) == before
