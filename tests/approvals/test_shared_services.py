"""Shared services: several owning teams, and the policy rule for how their authority combines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.exceptions import NotEligible
from approvals.gate import evaluate_gate
from approvals.models import ApprovalRequest, Release
from governance.authority.services import create_delegation
from governance.models import Policy, Role
from governance.policy.engine import PolicyError, parse
from governance.policy.services import publish_policy
from tests import factories

pytestmark = pytest.mark.django_db

POLICY = """
rules:
  - id: staging
    when: environment.risk == "medium"
    require:
      stages:
        - {{key: service, approvers: service_approvers, count: 1, order: 10{teams}}}
"""


@pytest.fixture
def shared(org, service, approver, second_approver, team):
    """payments-api owned by Payments (alice, primary) and Ledger (bob)."""
    ledger_team = factories.TeamFactory(slug="ledger", name="Ledger")
    team.members.add(approver)
    ledger_team.members.add(second_approver)
    service.co_owning_teams.add(ledger_team)
    return service


def use_policy(teams: str) -> None:
    current = Policy.objects.get(slug="default")
    publish_policy(
        policy_obj=current,
        actor=None,
        source=POLICY.format(teams=f", teams: {teams}" if teams else ""),
    )


def request(service, staging, bot) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, staging), actor=bot
    )
    return release


def gate(release) -> dict:
    return evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).as_dict()


def test_each_team_must_approve(shared, staging, pipeline_bot, approver, second_approver):
    use_policy("each")
    release = request(shared, staging, pipeline_bot)
    stage = release.approval.stages.get()
    assert (stage.required_count, stage.teams_required) == (2, ["payments", "ledger"])

    factories.decide(release, approver)
    answer = gate(release)
    assert answer["status"] == "pending"
    assert "still needs an approval from team(s): ledger" in answer["reasons"][0]

    factories.decide(release, second_approver)
    assert gate(release)["status"] == "approved"


def test_two_approvals_from_one_team_do_not_satisfy_each(
    shared, staging, pipeline_bot, approver, team
):
    use_policy("each")
    colleague = factories.UserFactory(username="paula")
    team.members.add(colleague)
    factories.grant(colleague, Role.APPROVER, shared)
    release = request(shared, staging, pipeline_bot)
    factories.decide(release, approver)
    factories.decide(release, colleague)
    assert release.approval.stages.get().status == "active"
    assert ApprovalRequest.objects.get(release=release).status == "pending"


def test_primary_owner_decides(shared, staging, pipeline_bot, approver, second_approver):
    use_policy("primary")
    release = request(shared, staging, pipeline_bot)
    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, second_approver)  # bob is in the co-owning team only
    factories.decide(release, approver)
    assert gate(release)["status"] == "approved"


def test_a_shared_service_without_a_rule_shows_a_conflict_and_blocks_nothing(
    client, shared, staging, pipeline_bot, approver
):
    use_policy("")
    release = request(shared, staging, pipeline_bot)
    client.force_login(approver)
    body = client.get(reverse("approvals:release_detail", args=[release.pk])).content.decode()
    assert 'data-testid="ownership-conflict"' in body and "Payments, Ledger" in body
    factories.decide(release, approver)
    assert gate(release)["status"] == "approved"


def test_an_unknown_team_rule_is_refused():
    with pytest.raises(PolicyError, match="teams must be one of any, primary, each"):
        parse(POLICY.format(teams=", teams: all"))


def test_a_delegate_outside_the_owning_teams_cannot_act_when_the_policy_names_them(
    shared, staging, pipeline_bot, approver, team
):
    use_policy("primary")
    outsider_colleague = factories.UserFactory(username="omar")
    release = request(shared, staging, pipeline_bot)
    now = timezone.now()
    create_delegation(
        delegator=approver,
        delegate=outsider_colleague,
        service=None,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="leave",
        actor=approver,
    )
    with factories.nothing_changes(release), pytest.raises(NotEligible, match="owning teams"):
        factories.decide(release, outsider_colleague)
