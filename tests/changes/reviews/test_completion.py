"""Completing a review: an owner of the service, never the change's author; a post-mortem
judges the emergency. Actions have an owner and a due date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency
from changes.reviews import services as reviews
from changes.reviews.exceptions import InvalidReview, ReviewConflict, ReviewForbidden
from changes.reviews.models import Review, ReviewAction
from governance.models import LedgerEntry, Role, User
from tests import factories

pytestmark = pytest.mark.django_db


def complete(review: Review, actor: User, **overrides) -> Review:
    values = {
        "what_happened": "The migration locked the orders table for six minutes.",
        "root_cause": "An index built without CONCURRENTLY.",
        "justification_valid": None,
        "reason": "Reviewed in the team retro.",
    }
    values.update(overrides)
    return reviews.complete_review(review=review, actor=actor, **values)


def snapshot(review: Review) -> tuple:
    review = Review.objects.get(pk=review.pk)
    return (
        review.status,
        review.what_happened,
        review.root_cause,
        review.justification_valid,
        review.completed_by_id,
        LedgerEntry.objects.count(),
        ReviewAction.objects.count(),
    )


def test_an_owner_completes_a_review(failed_review, owner):
    done = complete(failed_review, owner)

    review = Review.objects.get(pk=done.pk)
    assert review.status == "completed"
    assert review.what_happened == "The migration locked the orders table for six minutes."
    assert review.root_cause == "An index built without CONCURRENTLY."
    assert review.justification_valid is None
    assert review.completed_by == owner
    assert review.completed_at is not None
    entry = LedgerEntry.objects.order_by("-seq").first()
    assert (entry.kind, entry.subject, entry.actor) == (
        "review.completed",
        f"review:{review.pk}",
        "olga",
    )
    assert entry.payload["reason"] == "Reviewed in the team retro."
    assert entry.payload["trigger"] == "deployment_failed"


def test_someone_who_is_not_an_owner_cannot_complete(failed_review, approver):
    before = snapshot(failed_review)

    with pytest.raises(ReviewForbidden) as refused:
        complete(failed_review, approver)

    assert refused.value.message == "Only an owner of payments-api may complete this review."
    assert snapshot(failed_review) == before


def test_the_author_of_the_change_cannot_complete_its_review_even_as_an_owner(
    failed_review, requester, service
):
    service.owners.add(requester)  # dave wrote the change and owns the service too
    before = snapshot(failed_review)

    with pytest.raises(ReviewForbidden) as refused:
        complete(failed_review, requester)

    assert refused.value.message == (
        f"You wrote {failed_review.change.ref}; another owner of payments-api must review it."
    )
    assert snapshot(failed_review) == before


def test_the_declarer_cannot_validate_their_own_emergency(post_mortem, low_tier_service):
    declarer = post_mortem.change.author
    low_tier_service.owners.add(declarer)
    before = snapshot(post_mortem)

    with pytest.raises(ReviewForbidden):
        complete(post_mortem, declarer, justification_valid=True)

    assert snapshot(post_mortem) == before


def test_the_declarer_of_someone_elses_change_cannot_complete_its_post_mortem(
    emergency_release, declared, deploy, web_owner, low_tier_service
):
    """wanda, an owner, declared the emergency on dave's change: the post-mortem is not hers."""
    EmergencyException.objects.filter(pk=declared.pk).update(declared_by=web_owner)
    deploy(emergency_release, "succeeded")
    review = Review.objects.get(kind="post_mortem")
    assert review.declared_by == web_owner
    before = snapshot(review)

    with pytest.raises(ReviewForbidden, match="You declared the emergency"):
        complete(review, web_owner, justification_valid=True)

    assert snapshot(review) == before
    other = factories.UserFactory(username="otto")
    low_tier_service.owners.add(other)
    assert complete(review, other, justification_valid=True).completed_by == other


def test_an_emergency_declared_after_the_post_mortem_opened_binds_it_too(
    emergency_release, deploy, web_owner, low_tier_service
):
    """The change was deployed as an emergency before anyone declared one; wanda declares it
    then, and may no longer complete the post-mortem already open."""
    deploy(emergency_release, "succeeded")
    review = Review.objects.get(kind="post_mortem")
    assert review.declared_by is None
    factories.grant(web_owner, Role.RELEASE_MANAGER, low_tier_service)
    declare_emergency(
        actor=web_owner,
        service=low_tier_service,
        change=emergency_release.change,
        title="Checkout down",
        justification="Checkout is down for every customer.",
        outage="Checkout returns 500s.",
        controls=["extra_monitoring"],
        hours=4,
    )
    review.refresh_from_db()
    assert review.declared_by == web_owner
    with pytest.raises(ReviewForbidden):
        complete(review, web_owner, justification_valid=True)


def test_a_post_mortem_must_say_whether_the_emergency_was_justified(post_mortem, web_owner):
    before = snapshot(post_mortem)

    with pytest.raises(InvalidReview) as refused:
        complete(post_mortem, web_owner)

    assert refused.value.fields == {
        "justification_valid": ["Say whether the emergency was justified."]
    }
    assert snapshot(post_mortem) == before


def test_a_post_mortem_records_an_unjustified_emergency(post_mortem, web_owner):
    complete(post_mortem, web_owner, justification_valid=False)

    review = Review.objects.get(pk=post_mortem.pk)
    assert (review.status, review.justification_valid) == ("completed", False)
    entry = LedgerEntry.objects.order_by("-seq").first()
    assert (entry.kind, entry.payload["justification_valid"]) == ("review.completed", False)


def test_a_post_implementation_review_does_not_judge_a_justification(failed_review, owner):
    before = snapshot(failed_review)

    with pytest.raises(InvalidReview) as refused:
        complete(failed_review, owner, justification_valid=True)

    assert refused.value.fields == {
        "justification_valid": ["Only a post-mortem judges an emergency's justification."]
    }
    assert snapshot(failed_review) == before


def test_what_happened_and_the_root_cause_are_required(failed_review, owner):
    before = snapshot(failed_review)

    with pytest.raises(InvalidReview) as refused:
        complete(failed_review, owner, what_happened="  ", root_cause="")

    assert refused.value.message == "The review is not complete."
    assert refused.value.fields == {
        "what_happened": ["Say what happened."],
        "root_cause": ["Name the root cause."],
    }
    assert snapshot(failed_review) == before


def test_a_completed_review_cannot_be_completed_again(failed_review, owner, service):
    complete(failed_review, owner)
    other = factories.UserFactory(username="otto")
    service.owners.add(other)
    before = snapshot(failed_review)

    with pytest.raises(ReviewConflict):
        complete(failed_review, other, root_cause="Something else.")

    assert snapshot(failed_review) == before
    assert Review.objects.get(pk=failed_review.pk).completed_by == owner


def test_an_owner_adds_an_action_with_an_owner_and_a_due_date(failed_review, owner, approver):
    due = timezone.now().date() + timedelta(days=14)

    action = reviews.add_action(
        review=failed_review,
        actor=owner,
        description="Build indexes CONCURRENTLY in migrations",
        owner=approver,
        due_on=due,
    )

    assert list(failed_review.actions.values_list("description", "owner__username", "due_on")) == [
        ("Build indexes CONCURRENTLY in migrations", "alice", due)
    ]
    entry = LedgerEntry.objects.order_by("-seq").first()
    assert entry.kind == "review.action_added"
    assert (entry.payload["action"], entry.payload["owner"], entry.payload["due_on"]) == (
        action.pk,
        "alice",
        due.isoformat(),
    )


def test_an_action_needs_a_person_and_a_due_date_not_in_the_past(
    failed_review, owner, pipeline_bot
):
    before = snapshot(failed_review)

    with pytest.raises(InvalidReview) as refused:
        reviews.add_action(
            review=failed_review,
            actor=owner,
            description=" ",
            owner=pipeline_bot,
            due_on=date(2020, 1, 1),
        )

    assert refused.value.fields == {
        "description": ["Describe the action."],
        "owner": ["The owner must be an active person, not a service account."],
        "due_on": ["The due date cannot be in the past."],
    }
    assert snapshot(failed_review) == before


def test_only_owners_add_actions(failed_review, approver):
    before = snapshot(failed_review)

    with pytest.raises(ReviewForbidden):
        reviews.add_action(
            review=failed_review,
            actor=approver,
            description="Anything",
            owner=approver,
            due_on=timezone.now().date(),
        )

    assert snapshot(failed_review) == before


def test_the_action_owner_marks_it_done_once(failed_review, owner, approver, second_approver):
    action = reviews.add_action(
        review=failed_review,
        actor=owner,
        description="Add a lock timeout",
        owner=approver,
        due_on=timezone.now().date(),
    )
    before = snapshot(failed_review)

    with pytest.raises(ReviewForbidden):
        reviews.complete_action(action=action, actor=second_approver)
    assert snapshot(failed_review) == before

    reviews.complete_action(action=action, actor=approver, reason="Shipped in 1.4.2.")
    assert ReviewAction.objects.get(pk=action.pk).done_at is not None
    entry = LedgerEntry.objects.order_by("-seq").first()
    assert (entry.kind, entry.actor, entry.payload["reason"]) == (
        "review.action_done",
        "alice",
        "Shipped in 1.4.2.",
    )
    with pytest.raises(ReviewConflict):
        reviews.complete_action(action=action, actor=owner)
