"""Four eyes on policy changes: nobody alone changes the rules that govern their own approvals."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.exceptions import InvalidPolicy, PermissionDenied
from governance.models import LedgerEntry, Policy, PolicyProposal, PolicyVersion, Role
from governance.policy import services as policy_changes
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def governed_admin(policy, service):
    """An administrator who also approves releases: governed by the policy."""
    user = factories.UserFactory(username="ada")
    factories.grant(user, Role.ADMINISTRATOR)
    factories.grant(user, Role.APPROVER, service)
    return user


@pytest.fixture
def second_admin(policy):
    user = factories.UserFactory(username="grace")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


def tightened(policy_obj: Policy) -> str:
    return policy_obj.source.replace("count: 1", "count: 2", 1)


def test_an_administrator_outside_the_approvals_publishes_directly(second_admin):
    current = Policy.objects.get(slug="default")
    result = policy_changes.change_policy(
        policy_obj=current,
        source=tightened(current),
        actor=second_admin,
        comment="staging needs two",
    )
    assert isinstance(result, PolicyVersion) and result.number == 2


def test_a_governed_administrator_only_proposes_and_a_second_one_publishes(
    governed_admin, second_admin
):
    current = Policy.objects.get(slug="default")
    proposal = policy_changes.change_policy(
        policy_obj=current,
        source=tightened(current),
        actor=governed_admin,
        comment="staging needs two",
    )
    assert isinstance(proposal, PolicyProposal)
    current.refresh_from_db()
    assert current.version == 1  # nothing published yet
    with pytest.raises(PermissionDenied, match="second administrator"):
        policy_changes.approve_proposal(proposal=proposal, actor=governed_admin)
    version = policy_changes.approve_proposal(proposal=proposal, actor=second_admin)
    assert version.number == 2 and version.created_by == second_admin
    assert "proposed by ada, approved by grace" in version.comment
    assert LedgerEntry.objects.filter(kind="policy.proposed").exists()
    with pytest.raises(PermissionDenied, match="already been decided"):
        policy_changes.approve_proposal(proposal=proposal, actor=second_admin)


def test_a_broken_proposal_is_refused_before_anyone_reviews_it(governed_admin):
    current = Policy.objects.get(slug="default")
    with pytest.raises(InvalidPolicy):
        policy_changes.change_policy(
            policy_obj=current, source="rules: [{id: x, when: 'a =='}]", actor=governed_admin
        )
    assert PolicyProposal.objects.count() == 0


def test_people_who_are_not_administrators_change_nothing(approver, policy):
    current = Policy.objects.get(slug="default")
    with pytest.raises(PermissionDenied):
        policy_changes.change_policy(policy_obj=current, source=tightened(current), actor=approver)


def test_the_policies_page_shows_the_diff_and_decides(client, governed_admin, second_admin):
    current = Policy.objects.get(slug="default")
    proposal = policy_changes.change_policy(
        policy_obj=current, source=tightened(current), actor=governed_admin
    )
    client.force_login(governed_admin)
    page = client.get(reverse("governance:policy_list")).content.decode()
    assert "+          count: 2" in page and "another administrator must decide" in page
    client.force_login(second_admin)
    url = reverse("governance:policy_proposal_decide", args=[proposal.pk])
    client.post(url, {"decision": "reject", "reason": ""})  # a rejection needs a reason
    proposal.refresh_from_db()
    assert proposal.outcome == "pending"
    client.post(url, {"decision": "reject", "reason": "Not during the freeze"})
    proposal.refresh_from_db()
    assert (proposal.outcome, proposal.decided_by) == ("rejected", second_admin)
    current.refresh_from_db()
    assert current.version == 1


@pytest.mark.parametrize(
    ("persona", "status"),
    [("anonymous", 302), ("approver", 403), ("auditor", 403), ("second_admin", 200)],
)
def test_policies_page_permission_matrix(client, org, request, persona, status):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("governance:policy_list")).status_code == status
