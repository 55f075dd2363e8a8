"""Governance actions: roles, API tokens and policy versions. Each writes its audit trail."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from governance import ledger, policy
from governance.exceptions import InvalidPolicy, PermissionDenied
from governance.models import (
    ROLE_PERMISSIONS,
    ApiToken,
    Policy,
    PolicyVersion,
    Role,
    RoleAssignment,
    Service,
    User,
    global_permission,
)


def grant_role(
    *, user: User, role: str, service: Service | None, reason: str, actor: User | None
) -> RoleAssignment:
    """Grant `role` on `service` (or on every service) and mirror it into guardian permissions.

    `actor` None means the system itself (seeding, identity sync); a person may never grant
    anything to themselves.
    """
    if actor is not None and actor.pk == user.pk:
        raise PermissionDenied("Nobody can grant a role to themselves.")
    if not reason.strip():
        raise PermissionDenied(
            "A reason is required for every grant.", fields={"reason": ["Required."]}
        )
    with transaction.atomic():
        assignment, created = RoleAssignment.objects.get_or_create(
            user=user,
            role=role,
            service=service,
            defaults={"reason": reason, "granted_by": actor},
        )
        if not created:
            return assignment
        for codename in ROLE_PERMISSIONS[role]:
            if service is None:
                user.user_permissions.add(global_permission(codename))
            else:
                assign_perm(f"governance.{codename}", user, service)
        if role == Role.ADMINISTRATOR and not user.is_staff:
            User.objects.filter(pk=user.pk).update(is_staff=True)
        ledger.append(
            kind="role.granted",
            subject=f"user:{user.pk}",
            actor=actor.username if actor else "system",
            payload={
                "user": user.username,
                "role": role,
                "scope": assignment.scope_label,
                "reason": reason,
            },
        )
    return assignment


def revoke_role(*, assignment: RoleAssignment, reason: str, actor: User | None) -> None:
    """Remove a role grant and the guardian permissions that only it provided."""
    user, service = assignment.user, assignment.service
    with transaction.atomic():
        assignment.delete()
        still_needed = {
            codename
            for other in RoleAssignment.objects.filter(user=user, service=service)
            for codename in ROLE_PERMISSIONS[other.role]
        }
        for codename in set(ROLE_PERMISSIONS[assignment.role]) - still_needed:
            if service is None:
                user.user_permissions.remove(global_permission(codename))
            else:
                remove_perm(f"governance.{codename}", user, service)
        ledger.append(
            kind="role.revoked",
            subject=f"user:{user.pk}",
            actor=actor.username if actor else "system",
            payload={
                "user": user.username,
                "role": assignment.role,
                "scope": service.name if service else "all services",
                "reason": reason,
            },
        )


def issue_token(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create an API token; returns the row and the secret, which is never stored or shown again."""
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=ApiToken.hash_key(key), key_prefix=key[:8]
    )
    return token, key


def authenticate_token(key: str) -> ApiToken | None:
    """The active token for a presented secret, recording its use at most once a minute."""
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(key_hash=ApiToken.hash_key(key))
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def publish_policy(
    *, policy_obj: Policy, source: str, actor: User | None, comment: str = ""
) -> PolicyVersion:
    """Validate `source` and store it as the policy's next version; invalid ones change nothing."""
    try:
        policy.parse(source)
    except policy.PolicyError as exc:
        raise InvalidPolicy(str(exc), fields={"source": [str(exc)]}) from None
    with transaction.atomic():
        locked = Policy.objects.select_for_update().get(pk=policy_obj.pk)
        number = locked.version + 1
        version = PolicyVersion.objects.create(
            policy=locked,
            number=number,
            source=source,
            checksum=policy.checksum(source),
            comment=comment,
            created_by=actor,
        )
        Policy.objects.filter(pk=locked.pk).update(source=source, version=number)
        ledger.append(
            kind="policy.published",
            subject=f"policy:{locked.pk}",
            actor=actor.username if actor else "system",
            payload={
                "policy": locked.slug,
                "version": number,
                "checksum": version.checksum,
                "comment": comment,
            },
        )
    policy_obj.refresh_from_db()
    return version


def active_policy_version() -> PolicyVersion | None:
    """The version of the active policy that new approval requests are planned with."""
    return (
        PolicyVersion.objects.filter(policy__is_active=True)
        .select_related("policy")
        .order_by("policy__name", "-number")
        .first()
    )
