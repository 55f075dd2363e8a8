"""A policy's team rule is re-checked at each decision: someone listed when the plan was frozen
who has since left the owning team (or whose team no longer owns the service) no longer counts,
before the periodic re-resolution takes them off the list. Found by the organisation model
(tests/invariants/, invariant 17)."""

from __future__ import annotations

import pytest

from approvals.exceptions import NotEligible
from approvals.models import ApprovalRequest
from tests import factories
from tests.approvals.test_shared_services import gate, request, use_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(org, service, approver, second_approver, team):
    """payments-api owned by Payments (alice, primary) and Ledger (bob)."""
    ledger_team = factories.TeamFactory(slug="ledger", name="Ledger")
    team.members.add(approver)
    ledger_team.members.add(second_approver)
    service.co_owning_teams.add(ledger_team)
    return service


@pytest.mark.parametrize("rule", ["primary", "any"])
def test_a_person_who_left_the_owning_team_no_longer_counts(
    rule, shared, staging, pipeline_bot, approver, team
):
    use_policy(rule)
    release = request(shared, staging, pipeline_bot)
    stage = release.approval.stages.get()
    assert approver in stage.eligible_approvers.all()  # alice was in Payments when it was planned
    team.members.remove(approver)

    with factories.nothing_changes(release), pytest.raises(NotEligible, match="not an eligible"):
        factories.decide(release, approver)
    assert gate(release)["status"] == "pending"


def test_a_person_whose_team_stopped_owning_the_service_no_longer_counts(
    shared, staging, pipeline_bot, approver, second_approver
):
    use_policy("primary")
    release = request(shared, staging, pipeline_bot)
    ledger_team = shared.co_owning_teams.get()
    shared.team = ledger_team  # Ledger becomes the primary owner; alice's Payments co-owns
    shared.save()

    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, approver)
    assert ApprovalRequest.objects.get(release=release).status == "pending"


def test_a_member_of_the_owning_team_still_decides(shared, staging, pipeline_bot, approver, team):
    use_policy("primary")
    release = request(shared, staging, pipeline_bot)
    team.members.remove(approver)
    team.members.add(approver)  # back in the team
    factories.decide(release, approver)
    assert gate(release)["status"] == "approved"
