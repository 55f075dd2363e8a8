"""The invariants about freezes, incidents, change records and team rules catch a broken rule:
each test breaks one rule of the product, plays a short story through the model's own steps and
expects the model to report the invariant it breaks; unbroken, the same story keeps them all.

The random search reaches these states too (see the tally `make prove` prints), but rarely in
the minute `make test` gives it; these stories make sure every new invariant is judged, and
shown to bite, on every run.
"""

from __future__ import annotations

import pytest

from approvals import authority, gate
from approvals.models import Release
from approvals.services import requests as request_services
from approvals.services import transitions
from changes.freezes.services import freeze_blockers
from changes.models import FreezeOverride
from tests.invariants.organisation import BOT
from tests.invariants.stories import gate_says, play, play_broken, request, then

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


# --- The stories -----------------------------------------------------------------------------


def a_dev_release_inside_a_hard_freeze(machine) -> None:
    """A dev release (approved at once), then a hard freeze over every environment."""
    index = request(machine, "web", "dev")
    assert gate_says(machine, index) == "approved"
    then(machine, "freeze", "ada", "hard", None, None, 0, 6, "UTC", False, None)
    assert gate_says(machine, index) == "blocked"


def a_high_risk_release_during_an_incident(machine) -> None:
    """One approver everywhere; bob approves web to production; payments-api, which web
    depends on, has a P1 incident."""
    then(machine, "publish_policy", "ada", "one-approver")
    index = request(machine, "web", "production")
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert gate_says(machine, index) == "approved"
    then(machine, "incident", "open", 0, "payments-api", "P1", "")
    assert gate_says(machine, index) == "blocked"


def an_override_asked_then_confirmed(machine) -> None:
    """A hard freeze holds a dev release; ada asks to let it through, adam confirms later; the
    override lasts four hours."""
    index = request(machine, "web", "dev")
    then(machine, "freeze", "ada", "hard", None, None, 0, 48, "UTC", False, None)
    then(machine, "override", "ask", "ada", "adam", index, 0, 4)
    assert gate_says(machine, index) == "blocked"  # asked, not confirmed
    then(machine, "override", "confirm_waiting", "ada", "ada", index, 0, 4)  # not by the asker
    assert gate_says(machine, index) == "blocked"
    then(machine, "override", "confirm_waiting", "ada", "adam", index, 0, 4)
    assert gate_says(machine, index) == "approved"
    then(machine, "time_passes", 5)
    assert gate_says(machine, index) == "blocked"  # the override expired


def emergencies_during_an_incident(machine) -> None:
    """web depends on payments-api, which has a P1 incident; an emergency naming it and one
    naming nothing go to production, each approved by bob; dave declares the first one an
    emergency for four hours, then time passes."""
    then(machine, "incident", "open", 0, "payments-api", "P1", "")
    for index, fixes in ((len(machine.releases), 0), (len(machine.releases) + 1, None)):
        args = (BOT, "web", "production", "", None, "emergency", "passed", False, fixes)
        then(machine, "request_release", *args)
        then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert gate_says(machine, index - 1) == "blocked"  # not declared yet
    then(machine, "declare", "dave", index - 1, 4)
    assert gate_says(machine, index - 1) == "approved"  # inside its exception
    assert gate_says(machine, index) == "blocked"  # never declared: held
    then(machine, "time_passes", 5)
    assert gate_says(machine, index - 1) == "blocked"  # the exception ended


def a_request_inside_a_soft_freeze(machine) -> None:
    then(machine, "freeze", "ada", "soft", "staging", "payments-api", 0, 6, "UTC", False, None)
    index = request(machine, "payments-api", "staging")
    stages = Release.objects.get(pk=machine.releases[index]).approval.stages
    assert list(stages.values_list("key", flat=True)) == ["service", "freeze"]


def a_dev_release_and_its_change(machine) -> None:
    index = request(machine, "web", "dev")
    assert Release.objects.get(pk=machine.releases[index]).change.state == "scheduled"


def an_owner_leaving_the_primary_team(machine) -> None:
    """Owners of the primary team decide staging; bob, listed, leaves Platform and approves."""
    then(machine, "publish_policy", "ada", "owners-and-teams")
    index = request(machine, "web", "staging")
    then(machine, "team_membership", "ada", "bob", "platform", False, 0)
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert gate_says(machine, index) == "pending"


def _old_is_eligible(stage, user, release) -> bool:
    """The rule before team membership was re-checked at decision time."""
    frozen = any(u.pk == user.pk for u in stage.eligible_approvers.all())
    return frozen and authority.has_stage_authority(
        user, release.service, stage.approvers, release.environment
    )


def _overridden_once_asked(release, now, **kwargs) -> list[str]:
    """The gate's freeze check, letting a release through once an override is asked for."""
    if FreezeOverride.objects.filter(release_id=release.pk).exists():
        return []
    return freeze_blockers(release, now, **kwargs)


def _exceptions_never_end(change, now) -> tuple[bool, list[str]]:
    """The gate's emergency check, treating every emergency change as inside its exception."""
    return change.type == "emergency", []


BROKEN = {
    # story, what is broken, the invariants that may report it first
    "hard freezes ignored": (
        a_dev_release_inside_a_hard_freeze,
        (gate, "freeze_blockers", lambda release, now, **kwargs: []),
        (12, 13),
    ),
    "incidents ignored": (
        a_high_risk_release_during_an_incident,
        (gate, "incident_hold_reasons", lambda **kwargs: []),
        (12, 14),
    ),
    "an override counts before it is confirmed": (
        an_override_asked_then_confirmed,
        (gate, "freeze_blockers", _overridden_once_asked),
        (12, 13),
    ),
    "emergency exceptions never end": (
        emergencies_during_an_incident,
        (gate, "emergency_standing", _exceptions_never_end),
        (12, 13, 14),
    ),
    "no soft freeze stage": (
        a_request_inside_a_soft_freeze,
        (request_services, "add_freeze_stage", lambda plan, *args: plan),
        (15,),
    ),
    "changes left behind": (
        a_dev_release_and_its_change,
        (transitions, "follow_releases", lambda **kwargs: None),
        (16,),
    ),
    "team left, still counted": (
        an_owner_leaving_the_primary_team,
        (authority, "_is_eligible", _old_is_eligible),
        (17,),
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_model_catches_a_broken_rule(broken):
    play_broken(*BROKEN[broken])


@pytest.mark.parametrize("broken", BROKEN)
def test_the_same_story_keeps_every_invariant(broken):
    story, _, _ = BROKEN[broken]
    play(story)
