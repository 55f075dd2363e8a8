"""Example tests of the grant rules (governance/authority/services.py) that mutation testing
showed no other test pinned down; each names the rule it holds."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from guardian.shortcuts import assign_perm

from governance.authority.selectors import administrators
from governance.authority.services import grant_role, is_administrator, revoke_role
from governance.exceptions import PermissionDenied
from governance.identity import services as identity
from governance.models import IdentityGroup, LedgerEntry, Role, RoleAssignment
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def erin(db):
    """An auditor of everything, granted by an administrator."""
    return factories.UserFactory(username="erin", first_name="Erin")


def test_an_auditor_is_refused_a_deciding_role_with_the_reason_on_the_field(
    org, administrator, erin, service
):
    grant_role(user=erin, role=Role.AUDITOR, service=None, reason="SOX", actor=administrator)
    for role in (Role.APPROVER, Role.CAB_MEMBER):
        with pytest.raises(PermissionDenied) as refused:
            grant_role(user=erin, role=role, service=service, reason="x", actor=administrator)
        assert refused.value.message == (
            "erin holds the auditor role; auditors are independent and decide nothing. "
            "Revoke the auditor role first."
        )
        assert refused.value.fields == {"role": ["Conflicts with the auditor role."]}
    assert list(RoleAssignment.objects.filter(user=erin).values_list("role", flat=True)) == [
        Role.AUDITOR
    ]


def test_an_approver_is_refused_the_auditor_role_naming_the_roles_to_revoke_first(
    org, administrator, approver, cab_member
):
    factories.grant(approver, Role.CAB_MEMBER)
    before = RoleAssignment.objects.filter(user=approver).count()
    with pytest.raises(PermissionDenied) as refused:
        grant_role(user=approver, role=Role.AUDITOR, service=None, reason="x", actor=administrator)
    assert refused.value.message == (
        "alice holds Approver, CAB member; an auditor decides nothing, so revoke those "
        "roles before granting the auditor role."
    )
    assert refused.value.fields == {"role": ["Conflicts with the person's approval roles."]}
    assert RoleAssignment.objects.filter(user=approver).count() == before


def test_other_peoples_approval_roles_do_not_stop_someone_becoming_an_auditor(
    org, administrator, approver, erin
):
    """Only the person's own roles conflict: approvers elsewhere in the organisation do not."""
    assert RoleAssignment.objects.filter(role=Role.APPROVER).exists()
    grant = grant_role(
        user=erin, role=Role.AUDITOR, service=None, reason="SOX", actor=administrator
    )
    assert grant.role == Role.AUDITOR


def test_a_release_manager_may_become_an_auditor(org, administrator, erin, service):
    """Only deciding roles conflict with auditing; a release manager approves nothing."""
    grant_role(
        user=erin, role=Role.RELEASE_MANAGER, service=service, reason="x", actor=administrator
    )
    grant = grant_role(
        user=erin, role=Role.AUDITOR, service=None, reason="SOX", actor=administrator
    )
    assert grant.role == Role.AUDITOR


def test_a_role_held_through_a_group_and_then_granted_by_hand_is_held_by_hand(
    org, administrator, service
):
    """An administrator grants what an identity group granted: the grant is theirs from then
    on, with their reason, and leaving the group no longer takes it away."""
    member = factories.UserFactory(username="gus")
    group = IdentityGroup.objects.create(name="payments-approvers", scim_external_id="g1")
    identity.add_role_mapping(
        group=group, role=Role.APPROVER, service=service, reason="Okta group", actor=None
    )
    identity.apply_group_membership(group=group, add=[member], remove=[], source="scim")
    held = RoleAssignment.objects.get(user=member, role=Role.APPROVER)
    assert held.mapped_grants.exists()

    again = grant_role(
        user=member, role=Role.APPROVER, service=service, reason="On call", actor=administrator
    )

    assert again.pk == held.pk
    held.refresh_from_db()
    assert (held.reason, held.granted_by, held.mapped_grants.exists()) == (
        "On call",
        administrator,
        False,
    )
    entry = LedgerEntry.objects.filter(kind="role.granted", actor="ada").latest("seq")
    assert entry.subject == f"user:{member.pk}"
    assert entry.payload == {
        "user": "gus",
        "role": Role.APPROVER,
        "scope": held.scope_label,
        "reason": "On call",
        "note": "was held through an identity group; now granted directly",
    }
    identity.apply_group_membership(group=group, add=[], remove=[member], source="scim")
    assert RoleAssignment.objects.filter(pk=held.pk).exists()


@pytest.mark.parametrize("scope", ["service", "team"])
def test_an_administrator_grant_on_a_service_or_a_team_administers_nothing(
    org, administrator, outsider, service, team, scope
):
    """Administration spans every service: a scoped administrator grant gives no power to grant
    roles (before, a team-scoped one did, as a full administrator)."""
    where = {"service": service} if scope == "service" else {"team": team, "service": None}
    grant_role(
        user=outsider, role=Role.ADMINISTRATOR, reason="scoped", actor=administrator, **where
    )
    assert not is_administrator(outsider)
    assert outsider not in administrators()
    before = RoleAssignment.objects.count()
    with pytest.raises(PermissionDenied, match="Only administrators can grant roles"):
        grant_role(
            user=administrator, role=Role.APPROVER, service=service, reason="x", actor=outsider
        )
    assert RoleAssignment.objects.count() == before


def test_nobody_grants_themselves_a_role(org, administrator, service):
    with pytest.raises(PermissionDenied) as refused:
        grant_role(
            user=administrator, role=Role.APPROVER, service=service, reason="x", actor=administrator
        )
    assert refused.value.message == "Nobody can grant a role to themselves."


def test_revoking_says_who_may_and_needs_a_reason(org, administrator, approver, second_approver):
    grant = RoleAssignment.objects.filter(user=approver).first()
    with pytest.raises(PermissionDenied) as refused:
        revoke_role(assignment=grant, reason="x", actor=second_approver)
    assert refused.value.message == "Only administrators can revoke roles."
    with pytest.raises(PermissionDenied) as refused:
        revoke_role(assignment=grant, reason="  ", actor=administrator)
    assert refused.value.message == "A reason is required for every revocation."
    assert refused.value.fields == {"reason": ["Required."]}
    own = RoleAssignment.objects.get(user=administrator, role=Role.ADMINISTRATOR)
    with pytest.raises(PermissionDenied) as refused:
        revoke_role(assignment=own, reason="leaving", actor=administrator)
    assert refused.value.message == "Administrators cannot revoke their own administrator role."
    assert RoleAssignment.objects.filter(pk__in=(grant.pk, own.pk)).count() == 2


def test_a_revocation_is_ledgered_with_who_what_and_why(org, administrator, approver, service):
    grant = RoleAssignment.objects.get(user=approver, service=service)
    revoke_role(assignment=grant, reason="Moved team", actor=administrator)
    entry = LedgerEntry.objects.get(kind="role.revoked")
    assert (entry.subject, entry.actor) == (f"user:{approver.pk}", "ada")
    assert entry.payload == {
        "user": "alice",
        "role": Role.APPROVER,
        "scope": grant.scope_label,
        "reason": "Moved team",
    }


def test_a_service_account_holds_the_release_manager_role_only(
    org, administrator, pipeline_bot, service
):
    before = RoleAssignment.objects.filter(user=pipeline_bot).count()
    with pytest.raises(PermissionDenied) as refused:
        grant_role(
            user=pipeline_bot, role=Role.APPROVER, service=service, reason="x", actor=administrator
        )
    assert refused.value.message == (
        "Service accounts only request releases: they can hold the release manager role only."
    )
    assert refused.value.fields == {"role": ["Not for a service account."]}
    assert RoleAssignment.objects.filter(user=pipeline_bot).count() == before


def test_every_grant_needs_a_reason(org, administrator, outsider, service):
    with pytest.raises(PermissionDenied) as refused:
        grant_role(
            user=outsider, role=Role.APPROVER, service=service, reason=" ", actor=administrator
        )
    assert refused.value.message == "A reason is required for every grant."
    assert refused.value.fields == {"reason": ["Required."]}
    assert not RoleAssignment.objects.filter(user=outsider).exists()


def test_permissions_are_the_union_of_every_grant(org, administrator, outsider, team, service):
    """Two roles on everything, and one role on two teams' services: each grant adds its
    permissions, none replaces another's."""
    other_team = factories.TeamFactory(slug="growth", name="Growth")
    other_service = factories.ServiceFactory(slug="growth-api", team=other_team)
    for role in (Role.RELEASE_MANAGER, Role.CAB_MEMBER):
        grant_role(user=outsider, role=role, service=None, reason="x", actor=administrator)
    for where in (team, other_team):
        grant_role(
            user=outsider,
            role=Role.APPROVER,
            service=None,
            team=where,
            reason="x",
            actor=administrator,
        )
    outsider = type(outsider).objects.get(pk=outsider.pk)  # no cached permissions

    wanted = {"governance.request_release", "governance.cab_approve"}
    assert wanted <= outsider.get_all_permissions()
    for owned in (service, other_service):
        assert outsider.has_perm("governance.approve_release", owned)


def test_a_grant_on_both_a_service_and_a_team_is_refused(
    org, administrator, outsider, service, team
):
    entries = LedgerEntry.objects.count()
    with pytest.raises(PermissionDenied) as refused:
        grant_role(
            user=outsider,
            role=Role.APPROVER,
            service=service,
            team=team,
            reason="x",
            actor=administrator,
        )
    assert refused.value.message == (
        "Grant a role on one service or on a team's services, not both."
    )
    assert refused.value.fields == {"team": ["Choose a service or a team."]}
    assert not RoleAssignment.objects.filter(user=outsider).exists()
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize("ago", [timedelta(0), timedelta(seconds=1)])
def test_a_grant_expiring_now_or_earlier_is_refused(org, administrator, outsider, service, ago):
    now = timezone.now()
    with (
        mock.patch("governance.authority.services.timezone.now", return_value=now),
        pytest.raises(PermissionDenied) as refused,
    ):
        grant_role(
            user=outsider,
            role=Role.APPROVER,
            service=service,
            reason="x",
            actor=administrator,
            expires_at=now - ago,
        )
    assert refused.value.message == "The expiry must be in the future."
    assert refused.value.fields == {"expires_at": ["Must be in the future."]}
    assert not RoleAssignment.objects.filter(user=outsider).exists()


def test_a_grant_records_who_granted_it_why_and_until_when(
    org, administrator, outsider, service, production
):
    until = timezone.now() + timedelta(days=7)
    grant = grant_role(
        user=outsider,
        role=Role.APPROVER,
        service=service,
        environment=production,
        reason="Covering the release train",
        actor=administrator,
        expires_at=until,
    )
    stored = RoleAssignment.objects.get(user=outsider)
    assert stored.pk == grant.pk
    assert (stored.role, stored.service, stored.team, stored.environment) == (
        Role.APPROVER,
        service,
        None,
        production,
    )
    assert (stored.reason, stored.granted_by, stored.expires_at) == (
        "Covering the release train",
        administrator,
        until,
    )
    entry = LedgerEntry.objects.get(kind="role.granted", subject=f"user:{outsider.pk}")
    assert entry.actor == "ada"
    assert entry.payload == {
        "user": outsider.username,
        "role": Role.APPROVER,
        "scope": stored.scope_label,
        "reason": "Covering the release train",
        "expires_at": until.isoformat(),
    }
    assert outsider.has_perm("governance.approve_release", service)


def test_a_grant_by_the_system_is_ledgered_as_the_system_and_without_expiry(org, outsider):
    grant_role(user=outsider, role=Role.RELEASE_MANAGER, service=None, reason="seed", actor=None)
    entry = LedgerEntry.objects.get(kind="role.granted", subject=f"user:{outsider.pk}")
    assert entry.actor == "system"
    assert entry.payload["expires_at"] is None
    assert RoleAssignment.objects.get(user=outsider).granted_by is None


def test_granting_a_role_already_held_changes_nothing(org, administrator, outsider, service):
    first = grant_role(
        user=outsider, role=Role.APPROVER, service=service, reason="first", actor=administrator
    )
    entries = LedgerEntry.objects.count()
    again = grant_role(
        user=outsider, role=Role.APPROVER, service=service, reason="again", actor=administrator
    )
    assert again.pk == first.pk
    assert RoleAssignment.objects.get(user=outsider).reason == "first"
    assert LedgerEntry.objects.count() == entries


def test_an_administrator_grant_lets_the_person_into_the_admin_and_no_other_grant_does(
    org, administrator, outsider, second_approver
):
    assert not outsider.is_staff and not second_approver.is_staff
    grant_role(
        user=outsider, role=Role.ADMINISTRATOR, service=None, reason="x", actor=administrator
    )
    for role in (Role.CAB_MEMBER, Role.RELEASE_MANAGER):
        grant_role(user=second_approver, role=role, service=None, reason="x", actor=administrator)
    outsider.refresh_from_db()
    second_approver.refresh_from_db()
    assert outsider.is_staff and not second_approver.is_staff


def test_grants_leave_permissions_given_by_hand_in_the_admin_alone(
    org, administrator, outsider, service, team
):
    """A role's permissions are kept in line with the grants; a Django permission an
    administrator gave by hand (to read services in the admin, say) is not the grants' to take."""
    by_hand = Permission.objects.get(content_type__app_label="governance", codename="view_service")
    outsider.user_permissions.add(by_hand)
    assign_perm("governance.view_team", outsider, team)
    grant = grant_role(
        user=outsider, role=Role.APPROVER, service=None, reason="x", actor=administrator
    )
    revoke_role(assignment=grant, reason="x", actor=administrator)
    outsider = type(outsider).objects.get(pk=outsider.pk)  # no cached permissions
    assert outsider.has_perm("governance.view_service")
    assert outsider.has_perm("governance.view_team", team)
    assert not outsider.has_perm("governance.approve_release")


def test_revoking_one_services_grant_keeps_the_permission_on_another(
    org, administrator, outsider, service
):
    other = factories.ServiceFactory(slug="ledger-api", team=service.team)
    grants = [
        grant_role(
            user=outsider, role=Role.APPROVER, service=where, reason="x", actor=administrator
        )
        for where in (service, other)
    ]
    revoke_role(assignment=grants[0], reason="Moved on", actor=administrator)
    outsider = type(outsider).objects.get(pk=outsider.pk)
    assert not outsider.has_perm("governance.approve_release", service)
    assert outsider.has_perm("governance.approve_release", other)


def test_revoking_one_role_on_a_service_keeps_another_roles_permissions_there(
    org, administrator, outsider, service
):
    approving, requesting = (
        grant_role(user=outsider, role=role, service=service, reason="x", actor=administrator)
        for role in (Role.APPROVER, Role.RELEASE_MANAGER)
    )
    revoke_role(assignment=approving, reason="Moved on", actor=administrator)
    outsider = type(outsider).objects.get(pk=outsider.pk)
    assert not outsider.has_perm("governance.approve_release", service)
    assert outsider.has_perm("governance.request_release", service)
    assert RoleAssignment.objects.filter(user=outsider).get() == requesting
