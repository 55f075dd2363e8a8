"""Invariant 20 catches a broken rule of the CAB's meetings and of the reviews that follow an
emergency: each test breaks one rule of the product, plays a short story through the model's
own steps and expects the model to report it; unbroken, the same story keeps every invariant.

The random search reaches these states too (see the tally `make prove` prints), but seldom all
of them in the minute `make test` gives it.
"""

from __future__ import annotations

import pytest

from approvals import services as approvals
from approvals.cab import services as cab_bridge
from approvals.emergencies import services as emergencies
from approvals.models import Decision, Release
from changes.cab.models import CabMeeting
from changes.reviews import services as reviews
from changes.reviews.models import Review
from tests.invariants.cab_steps import MEMBER, MINUTES
from tests.invariants.organisation import BOT
from tests.invariants.stories import gate_says, play, play_broken, then

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


# --- The stories -----------------------------------------------------------------------------


def an_escalated_release_approved_in_a_meeting(machine) -> None:
    """ada calls a meeting of carol and bob a day ahead; the first release waits past its SLA
    and beat escalates it onto the meeting; both members mark themselves present, bob opens
    the meeting (and chairs it), carol records the approval."""
    then(machine, "call_meeting", "ada", 1, None, 30)
    then(machine, "time_passes", 26)
    then(machine, "periodic_tasks")
    then(machine, "run_meeting", 0, "convene", MEMBER)
    then(machine, "record_outcome", 0, True, "carol", 0, MINUTES)
    decision = Decision.objects.get(channel="cab")
    assert (decision.approver.username, decision.verdict) == ("carol", "approve")
    assert gate_says(machine, 0) == "approved"
    then(machine, "record_outcome", 0, False, "bob", 1, MINUTES)  # recorded already: refused
    then(machine, "run_meeting", 0, "close", "carol")
    assert CabMeeting.objects.get().status == "closed"


def the_cab_meets_tomorrow(machine) -> None:
    """ada calls carol's CAB for tomorrow; as the day passes, beat escalates both first
    releases onto its agenda; carol comes, opens the meeting, approves both and closes it. The
    first release is approved; the second, under dual control, still needs a second person."""
    then(machine, "cab_meets", 0, None, True, 0, True)
    decisions = Decision.objects.filter(channel="cab")
    assert sorted(decisions.values_list("approver__username", flat=True)) == ["carol", "carol"]
    assert (gate_says(machine, 0), gate_says(machine, 1)) == ("approved", "pending")
    assert CabMeeting.objects.get().status == "closed"


def an_emergency_reviewed_by_its_change_author(machine) -> None:
    """The pipeline asks for an emergency release of web that bob triggered (bob wrote its
    change); dave declares it; ada makes bob a CAB member; bob tries to record the CAB's
    secondary review, then carol does."""
    then(
        machine,
        "request_release",
        BOT,
        "web",
        "staging",
        "bob",
        None,
        "emergency",
        "passed",
        False,
        None,
    )
    then(machine, "declare", "dave", 0, 4)
    then(machine, "roles", "ada", False, "bob", "cab_member", "everything", None, None)
    then(machine, "secondary_review", "bob", 0, "justified", "")
    then(machine, "secondary_review", "carol", 0, "justified", "")
    assert machine.world.users  # every invariant held after each step


def a_post_mortem_tried_by_its_author(machine) -> None:
    """An emergency release of web that bob (its owner) triggered is declared by dave; ada
    makes adam a second owner of web. The release deploys; bob, who wrote the change, tries to
    complete the post-mortem and is refused; adam completes it."""
    _an_emergency_deployed(machine, "dave")
    pick = _post_mortem_pick()
    then(machine, "complete_review", "bob", pick, "yes")
    assert Review.objects.get(kind=Review.Kind.POST_MORTEM).status == "open"
    then(machine, "complete_review", "adam", pick, "yes")
    assert Review.objects.get(kind=Review.Kind.POST_MORTEM).completed_by.username == "adam"


def _an_emergency_deployed(machine, declarer: str) -> None:
    args = (BOT, "web", "staging", "bob", None, "emergency", "passed", False, None)
    then(machine, "request_release", *args)
    then(machine, "declare", declarer, 0, 4)
    then(machine, "edit_catalogue", "ada", "owners", "web", "platform", frozenset({"adam", "bob"}))
    then(machine, "deploy", 2, "approved", "succeeded")


def _post_mortem_pick() -> int:
    """The post-mortem's place among the reviews, as `complete_review` picks them."""
    reviews = list(Review.objects.order_by("pk").values_list("kind", flat=True))
    return reviews.index(Review.Kind.POST_MORTEM)


# --- The broken rules ------------------------------------------------------------------------


def _decides_as_the_chair(item, actor, outcome, minutes, code) -> None:
    """The bridge, deciding as the meeting's chair rather than the member recording it."""
    if outcome in cab_bridge.VERDICTS:
        approvals.record_decision(
            release=Release.objects.get(pk=item.release_id),
            actor=item.meeting.chair,
            verdict=cab_bridge.VERDICTS[outcome],
            rationale=minutes,
            channel="cab",
        )


def _anyone_on_the_cab_reviews(*, emergency, actor, outcome, notes, now=None):
    """The secondary review without its author and declarer refused: CAB members only."""
    emergency.declared_by_id = None
    emergency.change.author_id = None
    return ORIGINAL_REVIEW(emergency=emergency, actor=actor, outcome=outcome, notes=notes)


ORIGINAL_REVIEW = emergencies.record_secondary_review

BROKEN = {
    # story, what is broken, the invariants that may report it first
    "the meeting decides as its chair": (
        an_escalated_release_approved_in_a_meeting,
        (cab_bridge, "_act", _decides_as_the_chair),
        (20,),
    ),
    "an approval outcome without a decision": (
        the_cab_meets_tomorrow,
        (cab_bridge, "_act", lambda *args: None),
        (20,),
    ),
    "the change's author reviews the emergency": (
        an_emergency_reviewed_by_its_change_author,
        (emergencies, "record_secondary_review", _anyone_on_the_cab_reviews),
        (20,),
    ),
    "authors complete their own post-mortems": (
        a_post_mortem_tried_by_its_author,
        (reviews, "may_complete", lambda user, review: review.service.owners.filter(pk=user.pk)),
        (20,),
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_model_catches_a_broken_rule(broken):
    play_broken(*BROKEN[broken])


@pytest.mark.parametrize("broken", BROKEN)
def test_the_same_story_keeps_every_invariant(broken):
    story, _, _ = BROKEN[broken]
    play(story)


def test_the_declarer_of_an_existing_change_never_completes_its_post_mortem():
    """adam declares bob's change an emergency and is then made an owner of web: he must not
    complete the post-mortem of his own emergency (README, "Post-implementation reviews")."""

    def story(machine) -> None:
        _an_emergency_deployed(machine, "adam")
        then(machine, "complete_review", "adam", _post_mortem_pick(), "yes")
        assert Review.objects.get(kind=Review.Kind.POST_MORTEM).status == "open"

    play(story)
