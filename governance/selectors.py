"""Reusable reads about authority: who may approve what."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from guardian.models import UserObjectPermission

from governance.models import SERVICE_ACTIONS, Service, User

# Policy approver sources → the service permission that grants them.
SOURCE_ACTIONS = {"service_approvers": "approve", "cab": "cab"}


def eligible_approvers(service: Service, source: str) -> QuerySet[User]:
    """Active people (never service accounts) who hold the authority `source` names on `service`."""
    people = User.objects.filter(is_active=True, is_service_account=False)
    if source == "service_owners":
        return people.filter(owned_services=service)
    codename = SERVICE_ACTIONS[SOURCE_ACTIONS[source]]
    object_grants = UserObjectPermission.objects.filter(
        permission__codename=codename,
        permission__content_type__app_label="governance",
        content_type__app_label="governance",
        content_type__model="service",
        object_pk=str(service.pk),
    ).values("user_id")
    global_grant = Q(
        user_permissions__codename=codename,
        user_permissions__content_type__app_label="governance",
    )
    return people.filter(Q(pk__in=object_grants) | global_grant).distinct()


def holds_any_authority(user: User) -> bool:
    """Whether `user` may approve anything at all: a role on some service, or an ownership."""
    return (
        Service.objects.restrict(user, "approve").exists()
        or Service.objects.restrict(user, "cab").exists()
        or user.owned_services.exists()
    )


def has_stage_authority(user: User, service: Service, source: str) -> bool:
    """Whether `user` holds, right now, the authority a stage's approver source requires."""
    if not user.is_active or user.is_service_account:
        return False
    if source == "service_owners":
        return service.owners.filter(pk=user.pk).exists()
    permission = f"governance.{SERVICE_ACTIONS[SOURCE_ACTIONS[source]]}"
    # Django's ModelBackend ignores global permissions when an object is given: check both.
    return user.has_perm(permission) or user.has_perm(permission, service)
