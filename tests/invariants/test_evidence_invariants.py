"""Invariant 21 catches a broken rule: each test breaks one rule about imported policies or
auditors' reports, plays a short story through the model's own steps and expects the model to
report it; unbroken, the same story keeps every invariant (pattern of test_hold_invariants).
"""

from __future__ import annotations

import pytest

from approvals.models import Release
from approvals.policy_editor import simulation
from governance.models import Policy, PolicyProposal, Role, RoleAssignment
from governance.policy import services as policy_changes
from reporting import access
from reporting.compliance import report
from tests.invariants.evidence_checks import evidence_of
from tests.invariants.organisation import BOT
from tests.invariants.stories import play, play_broken, then

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def version() -> int:
    return Policy.objects.get(slug="default").version


# --- The stories -------------------------------------------------------------------------------


def a_loosening_import(machine) -> None:
    """ada, who approves nothing, imports production loosened to one approver: a proposal that
    neither she nor adam without confirming the loosening may publish; adam confirming does."""
    published = version()
    then(machine, "import_policy", "ada", "loosen", None, True)
    assert PolicyProposal.objects.get().outcome == "pending"
    then(machine, "decide_import", "ada", 0, True)  # the importer herself
    then(machine, "decide_import", "adam", 0, False)  # the loosening not confirmed
    assert (version(), PolicyProposal.objects.get().outcome) == (published, "pending")
    then(machine, "decide_import", "adam", 0, True)
    assert version() == published + 1
    assert evidence_of(machine.record).imports[0].loosening


def imports_by_an_approver(machine) -> None:
    """adam makes ada an approver; her tightening waits for him; her split of the policy in
    force does too, and adam approves it at once."""
    then(machine, "roles", "adam", False, "ada", Role.APPROVER, "everything", None, None)
    published = version()
    then(machine, "import_policy", "ada", "tighten", None, True)
    then(machine, "import_policy", "ada", "split", "other", True)
    assert version() == published + 1
    assert PolicyProposal.objects.filter(outcome="pending").count() == 1


def imports_by_an_administrator_who_approves_nothing(machine) -> None:
    """ada's tightening is published at once; bob (no administrator), a broken folder and two
    files defining one section are refused."""
    published = version()
    then(machine, "import_policy", "ada", "tighten", None, True)
    assert version() == published + 1
    for actor, variant in (("bob", "split"), ("ada", "invalid"), ("ada", "repeated")):
        then(machine, "import_policy", actor, variant, None, True)
    assert version() == published + 1


def an_administrator_whose_grant_expired(machine) -> None:
    """adam makes dave an administrator for three hours; five hours later, before beat revokes
    the grant, dave imports a tightening: refused."""
    then(machine, "roles", "adam", False, "dave", Role.ADMINISTRATOR, "everything", None, 3)
    then(machine, "time_passes", 5)
    published = version()
    then(machine, "import_policy", "dave", "tighten", None, True)
    assert version() == published


def a_proposal_overtaken_by_a_tightening(machine) -> None:
    """adam makes ada an approver; her loosening waits for a second administrator; meanwhile
    adam tightens the policy himself. Approving her proposal now would undo his tightening and
    publish a loosening judged against the old rules: refused; her split of the new policy,
    proposed after it, adam may approve."""
    then(machine, "roles", "adam", False, "ada", Role.APPROVER, "everything", None, None)
    then(machine, "import_policy", "ada", "loosen", None, True)
    then(machine, "import_policy", "adam", "tighten", None, True)
    published = version()
    then(machine, "decide_import", "adam", 0, True)
    assert version() == published
    assert PolicyProposal.objects.get(proposed_by__username="ada").outcome == "pending"
    then(machine, "import_policy", "ada", "split", "other", True)
    assert version() == published + 1


def _expiry_ignored(user) -> bool:
    """The administrator check before it looked at the grant's expiry."""
    return user.is_active and (
        user.is_superuser
        or RoleAssignment.objects.filter(
            user=user, role=Role.ADMINISTRATOR, service__isnull=True
        ).exists()
    )


def reports_of_decided_releases(machine) -> None:
    """One approver everywhere; bob approves payments-api to production; erin takes every
    report away, in the browser and with her token; alice (an approver) tries too."""
    then(machine, "publish_policy", "ada", "one-approver")
    args = (BOT, "payments-api", "production", "dave", None, "normal", "passed", False, None)
    then(machine, "request_release", *args)
    index = len(machine.releases) - 1
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert Release.objects.get(pk=machine.releases[index]).approval.status == "approved"
    for what in ("compliance_csv", "background_csv", "evidence_json", "audit_trail", "ledger"):
        for token in (False, True):
            then(machine, "auditor_exports", "erin", what, token, index)
    then(machine, "auditor_exports", "alice", "compliance_csv", True, index)
    then(machine, "auditor_exports", "alice", "another_persons_export", False, index)
    exports = evidence_of(machine.record).exports
    assert [e.served for e in exports] == [True] * 10 + [False, False]


def _staging_too(query, user):
    """The report's scope without its regulated-environment filter."""
    return Release.objects.restrict(user).filter(service__slug="payments-api")


BROKEN = {
    # story, what is broken, the invariants that may report it first
    "loosening not found": (
        a_loosening_import,
        (simulation.Simulation, "loosening", lambda self: []),
        (21,),
    ),
    "the importer approves their own proposal": (
        a_loosening_import,
        (policy_changes, "_check_decider", lambda proposal, actor: None),
        (21,),
    ),
    "a stale proposal published": (
        a_proposal_overtaken_by_a_tightening,
        (policy_changes, "_check_current", lambda proposal: None),
        (21,),
    ),
    "four eyes skipped": (
        imports_by_an_approver,
        (policy_changes, "needs_second_administrator", lambda actor: False),
        (4, 21),
    ),
    "policy changes by anyone": (
        imports_by_an_administrator_who_approves_nothing,
        (policy_changes, "is_administrator", lambda actor: True),
        (21,),
    ),
    "an expired administrator grant still counts": (
        an_administrator_whose_grant_expired,
        (policy_changes, "is_administrator", _expiry_ignored),
        (21,),
    ),
    "reports for anyone": (
        reports_of_decided_releases,
        (access, "holds_auditor_role", lambda user: True),
        (21,),
    ),
    "a report beyond its scope": (
        reports_of_decided_releases,
        (report, "releases_in_scope", _staging_too),
        (21,),
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_model_catches_a_broken_rule(broken):
    play_broken(*BROKEN[broken])


@pytest.mark.parametrize(
    "broken", sorted({story.__name__: story for story, _, _ in BROKEN.values()})
)
def test_the_same_story_keeps_every_invariant(broken):
    stories = {story.__name__: story for story, _, _ in BROKEN.values()}
    play(stories[broken])
