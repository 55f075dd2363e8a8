"""The authority reads' edges (`governance/authority/selectors.py`) that mutation testing showed
no test pinned down; each test names the rule it holds."""

from __future__ import annotations

import pytest

from governance.authority.selectors import (
    administrators,
    eligible_approvers,
    has_stage_authority,
    holds_any_authority,
    may_act,
)
from governance.models import Role, RoleAssignment, User
from tests import factories

pytestmark = pytest.mark.django_db


def test_only_an_unscoped_active_administrator_is_an_administrator(administrator, service, team):
    by_service = factories.UserFactory(username="svc-admin")
    RoleAssignment.objects.create(user=by_service, role=Role.ADMINISTRATOR, service=service)
    by_team = factories.UserFactory(username="team-admin")
    RoleAssignment.objects.create(user=by_team, role=Role.ADMINISTRATOR, team=team)
    gone = factories.UserFactory(username="gone-admin")
    factories.grant(gone, Role.ADMINISTRATOR)
    User.objects.filter(pk=gone.pk).update(is_active=False)

    assert list(administrators()) == [administrator]


def test_a_deactivated_person_may_do_nothing_whatever_they_were_granted(approver, service):
    User.objects.filter(pk=approver.pk).update(is_active=False)
    approver.refresh_from_db()

    assert may_act(approver, "approve", service, None) is False


def test_an_auditor_holds_no_authority_even_over_a_service_they_own(auditor, service):
    service.owners.add(auditor)

    assert holds_any_authority(auditor) is False


def test_seeing_and_requesting_releases_is_not_authority_to_approve(requester):
    """dave may view and request releases of his services; he approves nothing."""
    assert holds_any_authority(requester) is False


def test_a_cab_member_and_an_approver_hold_authority(cab_member, approver):
    assert holds_any_authority(cab_member) is True
    assert holds_any_authority(approver) is True


def test_a_service_account_never_holds_a_stage_s_authority(service):
    bot = factories.UserFactory(username="deploy-bot", is_service_account=True)
    RoleAssignment.objects.create(user=bot, role=Role.APPROVER, service=service)

    assert has_stage_authority(bot, service, "service_approvers") is False


def test_an_auditor_never_holds_a_stage_s_authority_even_with_a_grant(auditor, service):
    RoleAssignment.objects.create(user=auditor, role=Role.APPROVER, service=service)

    assert has_stage_authority(auditor, service, "service_approvers") is False


def test_release_managers_are_those_holding_that_role_not_administrators(
    requester, administrator, service
):
    """Administrators may request releases too, but a soft-freeze stage asks the service's
    release managers."""
    people = list(eligible_approvers(service, "release_managers"))

    assert people == [requester]
    assert has_stage_authority(requester, service, "release_managers") is True
    assert has_stage_authority(administrator, service, "release_managers") is False


def test_a_grant_scoped_to_another_team_says_nothing_about_this_service(service):
    other_team = factories.TeamFactory(slug="search", name="Search")
    person = factories.UserFactory(username="sam")
    RoleAssignment.objects.create(user=person, role=Role.APPROVER, team=other_team)

    assert may_act(person, "approve", service, None) is False
    assert person not in eligible_approvers(service, "service_approvers")
