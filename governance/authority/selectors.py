"""Reusable reads about authority: who may approve or request what, where.

Role grants (RoleAssignment) are scoped to a service, a team's services or everything, and may
be limited to one environment. Page and API scoping go through guardian permissions that mirror
the grants (`Service.objects.restrict`); questions about one release — may this person approve
it, who are its approvers — are answered from the grants themselves, which know environments.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from governance.authority.models import (
    ROLE_PERMISSIONS,
    SERVICE_ACTIONS,
    Environment,
    Role,
    RoleAssignment,
    Service,
)
from governance.people.models import User

# Policy approver sources → the service permission that grants them.
SOURCE_ACTIONS = {
    "service_approvers": "approve",
    "cab": "cab",
    "release_managers": "request",
    "security_approvers": "security",
}
# Every approver source a stage may name (the policy engine's APPROVER_SOURCES, which a test
# keeps equal): the owners come from the catalogue, the others from grants.
STAGE_SOURCES = ("service_owners", *SOURCE_ACTIONS)


def grants_for(action: str, service: Service, environment: Environment | None) -> QuerySet:
    """Grants in force that allow `action` on `service` (and on `environment`, when given)."""
    codename = SERVICE_ACTIONS[action]
    roles = [role for role, codenames in ROLE_PERMISSIONS.items() if codename in codenames]
    scope = (
        Q(service=service) | Q(team_id=service.team_id) | Q(service__isnull=True, team__isnull=True)
    )
    grants = RoleAssignment.objects.filter(scope, role__in=roles).exclude(
        expires_at__lte=timezone.now()
    )
    if environment is not None:
        grants = grants.filter(Q(environment__isnull=True) | Q(environment=environment))
    return grants


def administrator_grants() -> QuerySet[RoleAssignment]:
    """Administrator grants on everything, in force: a grant scoped to a service or a team
    administers nothing, and one past its expiry stops counting before beat revokes it."""
    return RoleAssignment.objects.filter(
        role=Role.ADMINISTRATOR, service__isnull=True, team__isnull=True
    ).exclude(expires_at__lte=timezone.now())


def administrators() -> QuerySet[User]:
    """Active people holding the administrator role on everything."""
    return User.objects.filter(is_active=True, pk__in=administrator_grants().values("user_id"))


def is_administrator(user: User) -> bool:
    """Holds the administrator role on everything (or is a Django superuser), and is active."""
    return user.is_active and (
        user.is_superuser or administrator_grants().filter(user=user).exists()
    )


def auditor_grants() -> QuerySet[RoleAssignment]:
    """Auditor grants in force, on any scope."""
    return RoleAssignment.objects.filter(role=Role.AUDITOR).exclude(expires_at__lte=timezone.now())


def roles_in_force(user: User) -> set[str]:
    """The roles `user` holds on some scope now (grants past their expiry excluded)."""
    return set(
        RoleAssignment.objects.filter(user=user)
        .exclude(expires_at__lte=timezone.now())
        .values_list("role", flat=True)
    )


def is_auditor(user: User) -> bool:
    """Whether `user` holds the auditor role anywhere. Auditors are independent: they read
    everything and decide nothing, on their own authority or on anyone else's."""
    return auditor_grants().filter(user=user).exists()


def eligible_approvers(
    service: Service, source: str, environment: Environment | None = None
) -> QuerySet[User]:
    """Active people (never service accounts, never auditors) who hold the authority `source`
    names."""
    people = User.objects.filter(is_active=True, is_service_account=False).exclude(
        pk__in=auditor_grants().values("user_id")
    )
    if source == "service_owners":
        return people.filter(owned_services=service)
    grants = source_grants(source, service, environment)
    return people.filter(pk__in=grants.values("user_id"))


def may_act(user: User, action: str, service: Service, environment: Environment | None) -> bool:
    """Whether `user` holds a grant for `action` on this service and environment right now."""
    if not user.is_active:
        return False
    return user.is_superuser or grants_for(action, service, environment).filter(user=user).exists()


def holds_any_authority(user: User) -> bool:
    """Whether `user` may approve anything at all: a role on some service, or an ownership."""
    if is_auditor(user):
        return False
    return (
        Service.objects.restrict(user, "approve").exists()
        or Service.objects.restrict(user, "cab").exists()
        or user.owned_services.exists()
    )


def has_stage_authority(
    user: User, service: Service, source: str, environment: Environment | None = None
) -> bool:
    """Whether `user` holds, right now, the authority a stage's approver source requires."""
    if not user.is_active or user.is_service_account or is_auditor(user):
        return False
    if source == "service_owners":
        return service.owners.filter(pk=user.pk).exists()
    return source_grants(source, service, environment).filter(user=user).exists()


def source_grants(source: str, service: Service, environment: Environment | None) -> QuerySet:
    """Grants in force that make someone an approver of a stage drawn from `source`. Release
    managers are those holding that role: administrators may request releases too, but an
    administrator is not the service's release manager."""
    grants = grants_for(SOURCE_ACTIONS[source], service, environment)
    if source == "release_managers":
        grants = grants.filter(role=Role.RELEASE_MANAGER)
    return grants
