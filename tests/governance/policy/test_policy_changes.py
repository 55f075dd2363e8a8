"""Four eyes on policy changes: nobody alone changes the rules that govern their own approvals."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

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


def loosened(policy_obj: Policy) -> str:
    return policy_obj.source.replace("count: 2", "count: 1")


def test_a_proposal_is_stale_once_another_version_is_published_and_cannot_be_approved(
    governed_admin, second_admin
):
    """Approving a proposal made against v1 after v2 was published would silently undo v2's
    tightening, and what it loosens was judged against v1: it is refused, and changes nothing."""
    current = Policy.objects.get(slug="default")
    proposal = policy_changes.change_policy(
        policy_obj=current,
        source=tightened(current).replace("count: 1", "count: 3", 1),
        actor=governed_admin,
        comment="staging needs three",
    )
    assert proposal.base_version == 1 and not proposal.is_stale
    policy_changes.change_policy(
        policy_obj=current, source=tightened(current), actor=second_admin, comment="two"
    )
    proposal.refresh_from_db()
    assert proposal.is_stale
    entries = LedgerEntry.objects.count()
    with pytest.raises(PermissionDenied, match=r"changed since this was proposed \(v1 then, v2"):
        policy_changes.approve_proposal(proposal=proposal, actor=second_admin)
    current.refresh_from_db()
    proposal.refresh_from_db()
    assert current.version == 2 and current.source == tightened(current.versions.get(number=1))
    assert proposal.outcome == PolicyProposal.Outcome.PENDING and proposal.decided_by is None
    assert LedgerEntry.objects.count() == entries
    policy_changes.reject_proposal(proposal=proposal, actor=second_admin, reason="Stale")
    assert PolicyProposal.objects.get().outcome == PolicyProposal.Outcome.REJECTED


def test_a_proposal_records_the_version_it_was_made_against(governed_admin, second_admin):
    current = Policy.objects.get(slug="default")
    policy_changes.change_policy(policy_obj=current, source=tightened(current), actor=second_admin)
    proposal = policy_changes.change_policy(
        policy_obj=current, source=loosened(Policy.objects.get()), actor=governed_admin
    )
    assert proposal.base_version == 2
    entry = LedgerEntry.objects.get(kind="policy.proposed")
    assert entry.payload["base_version"] == 2
    version = policy_changes.approve_proposal(proposal=proposal, actor=second_admin)
    assert version.number == 3


def test_the_policies_page_marks_a_stale_proposal_and_offers_only_to_reject_it(
    client, governed_admin, second_admin
):
    current = Policy.objects.get(slug="default")
    proposal = policy_changes.change_policy(
        policy_obj=current, source=tightened(current), actor=governed_admin
    )
    policy_changes.publish_policy(policy_obj=current, source=loosened(current), actor=second_admin)
    client.force_login(second_admin)
    page = client.get(reverse("governance:policy_list")).content.decode()
    assert 'data-testid="proposal-stale"' in page
    assert "proposed against v1; v2 has been published since" in page
    assert 'value="approve"' not in page and 'value="reject"' in page
    url = reverse("governance:policy_proposal_decide", args=[proposal.pk])
    response = client.post(url, {"decision": "approve", "reason": "ok"}, follow=True)
    assert "has changed since this was proposed" in response.content.decode()
    assert Policy.objects.get().version == 2
    assert PolicyProposal.objects.get().outcome == PolicyProposal.Outcome.PENDING


def test_existing_proposals_are_based_on_the_version_in_force_when_they_were_made(
    governed_admin, second_admin
):
    migration = importlib.import_module("governance.migrations.0021_policyproposal_base_version")
    current = Policy.objects.get(slug="default")
    start = timezone.now() - timedelta(days=3)
    PolicyVersion.objects.filter(number=1).update(created_at=start)
    policy_changes.publish_policy(policy_obj=current, source=tightened(current), actor=second_admin)
    PolicyVersion.objects.filter(number=2).update(created_at=start + timedelta(days=2))
    made = [start - timedelta(days=1), start + timedelta(days=1), start + timedelta(days=2)]
    for at in made:
        PolicyProposal.objects.create(
            policy=current, source="x", proposed_by=governed_admin, proposed_at=at
        )
    migration.base_on_the_version_in_force_when_proposed(apps, None)
    bases = PolicyProposal.objects.order_by("proposed_at").values_list("base_version", flat=True)
    assert list(bases) == [0, 1, 2]
