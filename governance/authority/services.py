"""Governance actions: roles, delegations, API tokens and policy versions, each audited."""

from __future__ import annotations

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm

from governance.authority.models import (
    ROLE_PERMISSIONS,
    SERVICE_ACTIONS,
    Delegation,
    Environment,
    Role,
    RoleAssignment,
    Service,
    global_permission,
)
from governance.authority.selectors import (
    STAGE_SOURCES,
    has_stage_authority,
    holds_any_authority,
    is_administrator,
    is_auditor,
)
from governance.exceptions import (
    InvalidDelegation,
    PermissionDenied,
)
from governance.ledger import services as ledger
from governance.notifications.services import notify
from governance.people.models import Team, User


def grant_role(
    *,
    user: User,
    role: str,
    service: Service | None,
    reason: str,
    actor: User | None,
    expires_at: datetime | None = None,
    team: Team | None = None,
    environment: Environment | None = None,
) -> RoleAssignment:
    """Grant `role` on `service`, on `team`'s services, or on every service (optionally only for
    releases to `environment`), and mirror it into guardian permissions.

    `actor` None means the system itself (seeding, identity sync). A person must be an
    administrator, and may never grant anything to themselves.
    """
    if actor is not None and actor.pk == user.pk:
        raise PermissionDenied("Nobody can grant a role to themselves.")
    require_administrator(actor, "grant roles")
    if user.is_service_account and role != Role.RELEASE_MANAGER:
        raise PermissionDenied(
            "Service accounts only request releases: they can hold the release manager role only.",
            fields={"role": ["Not for a service account."]},
        )
    if not reason.strip():
        raise PermissionDenied(
            "A reason is required for every grant.", fields={"reason": ["Required."]}
        )
    if actor is not None:
        _refuse_auditor_conflict(user, role)
    if service is not None and team is not None:
        raise PermissionDenied(
            "Grant a role on one service or on a team's services, not both.",
            fields={"team": ["Choose a service or a team."]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise PermissionDenied(
            "The expiry must be in the future.", fields={"expires_at": ["Must be in the future."]}
        )
    with transaction.atomic():
        assignment, created = RoleAssignment.objects.get_or_create(
            user=user,
            role=role,
            service=service,
            team=team,
            environment=environment,
            defaults={"reason": reason, "granted_by": actor, "expires_at": expires_at},
        )
        if not created:
            if actor is not None and assignment.mapped_grants.exists():
                _take_over_mapped_grant(assignment, actor, reason)
            return assignment
        sync_permissions(user)
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
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return assignment


DECIDING_ROLES = (Role.APPROVER, Role.CAB_MEMBER)


def _refuse_auditor_conflict(user: User, role: str) -> None:
    # Auditors are independent: one person never both audits and decides. Decisions refuse
    # auditors whatever their grants say; this tells the administrator at the moment of the grant.
    if role in DECIDING_ROLES and is_auditor(user):
        raise PermissionDenied(
            f"{user.username} holds the auditor role; auditors are independent and decide "
            "nothing. Revoke the auditor role first.",
            fields={"role": ["Conflicts with the auditor role."]},
        )
    if role == Role.AUDITOR:
        held = RoleAssignment.objects.filter(user=user, role__in=DECIDING_ROLES)
        if held.exists():
            names = ", ".join(sorted({a.get_role_display() for a in held}))
            raise PermissionDenied(
                f"{user.username} holds {names}; an auditor decides nothing, so revoke those "
                "roles before granting the auditor role.",
                fields={"role": ["Conflicts with the person's approval roles."]},
            )


def _take_over_mapped_grant(assignment: RoleAssignment, actor: User, reason: str) -> None:
    # A person now grants what an identity-group mapping granted: from here on the role is
    # held by hand, so leaving the group must no longer revoke it.
    assignment.mapped_grants.all().delete()
    RoleAssignment.objects.filter(pk=assignment.pk).update(reason=reason, granted_by=actor)
    ledger.append(
        kind="role.granted",
        subject=f"user:{assignment.user_id}",
        actor=actor.username,
        payload={
            "user": assignment.user.username,
            "role": assignment.role,
            "scope": assignment.scope_label,
            "reason": reason,
            "note": "was held through an identity group; now granted directly",
        },
    )


def require_administrator(actor: User | None, what: str) -> None:
    # Least privilege: only administrators change who holds authority. Roles are never above
    # an administrator's own authority, which spans every service.
    if actor is not None and not is_administrator(actor):
        raise PermissionDenied(f"Only administrators can {what}.")


def revoke_role(*, assignment: RoleAssignment, reason: str, actor: User | None) -> bool:
    """Remove a role grant and the guardian permissions that only it provided. Returns False,
    writing nothing, when the grant was already gone (revoked meanwhile by someone else, or by
    beat's expiry sweep)."""
    require_administrator(actor, "revoke roles")
    if (
        actor is not None
        and actor.pk == assignment.user_id
        and assignment.role == Role.ADMINISTRATOR
    ):
        raise PermissionDenied("Administrators cannot revoke their own administrator role.")
    if not reason.strip():
        raise PermissionDenied(
            "A reason is required for every revocation.", fields={"reason": ["Required."]}
        )
    user, scope = assignment.user, assignment.scope_label
    with transaction.atomic():
        # A conditional delete: of two revocations at once (a person and the expiry sweep, say)
        # the second waits on the row, deletes nothing, and so ledgers nothing.
        _, deleted = RoleAssignment.objects.filter(pk=assignment.pk).delete()
        if not deleted.get(RoleAssignment._meta.label):
            return False
        sync_permissions(user)
        ledger.append(
            kind="role.revoked",
            subject=f"user:{user.pk}",
            actor=actor.username if actor else "system",
            payload={
                "user": user.username,
                "role": assignment.role,
                "scope": scope,
                "reason": reason,
            },
        )
    return True


def sync_permissions(user: User) -> None:
    """Make the person's guardian and global permissions match their grants exactly.

    Grants on a team cover every service the team owns, so this also runs when services move
    between teams (`sync_team_grants`). Environment limits are not permissions: they are
    checked against each release (governance.authority.selectors.grants_for).
    """
    grants = list(RoleAssignment.objects.filter(user=user))
    # Equivalent mutant (make mutate): values_list(flat=True) without "pk" also yields the pk.
    team_services = {
        team_id: list(Service.objects.filter(team_id=team_id).values_list("pk", flat=True))
        for team_id in {g.team_id for g in grants if g.team_id}
    }
    wanted_global, wanted = set(), set()
    for grant in grants:
        codenames = ROLE_PERMISSIONS[grant.role]
        if grant.service_id:
            wanted |= {(grant.service_id, c) for c in codenames}
        elif grant.team_id:
            wanted |= {(pk, c) for pk in team_services[grant.team_id] for c in codenames}
        else:
            wanted_global |= set(codenames)
    _sync_global(user, wanted_global)
    _sync_objects(user, wanted)


def _sync_global(user: User, wanted: set[str]) -> None:
    # Only the roles' own permissions (those are named in governance alone: dropping the app
    # label is an equivalent mutant); a permission given by hand in the admin stays.
    current = set(
        user.user_permissions.filter(
            content_type__app_label="governance", codename__in=SERVICE_ACTIONS.values()
        ).values_list("codename", flat=True)
    )
    for codename in wanted - current:
        user.user_permissions.add(global_permission(codename))
    for codename in current - wanted:
        user.user_permissions.remove(global_permission(codename))


def _sync_objects(user: User, wanted: set[tuple[int, str]]) -> None:
    held = UserObjectPermission.objects.filter(
        user=user, content_type=ContentType.objects.get_for_model(Service)
    )
    current = {(int(pk), c) for pk, c in held.values_list("object_pk", "permission__codename")}
    # Equivalent mutant (make mutate): in_bulk(None) reads every service, the same ones found.
    services = Service.objects.in_bulk({pk for pk, _ in wanted - current})
    for pk, codename in wanted - current:
        assign_perm(f"governance.{codename}", user, services[pk])
    for pk, codename in current - wanted:
        held.filter(object_pk=str(pk), permission__codename=codename).delete()


def sync_team_grants(team: Team) -> None:
    """After services joined or left `team`, bring its team-wide grants' permissions in line."""
    holders = User.objects.filter(role_assignments__team=team).distinct()
    for user in holders:
        sync_permissions(user)


def create_delegation(
    *,
    delegator: User,
    delegate: User,
    service: Service | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: User,
) -> Delegation:
    """Lend `delegator`'s approval authority (on `service`, or all of it) to `delegate`.

    Refused with a reason when the window is empty or over, when it overlaps another delegation
    of the same person and scope, when the delegate could not approve anyway, or is away too.
    An administrator may arrange one for someone suddenly away, never naming themselves; the
    delegator is told.
    """
    _check_arranger(delegator, delegate, actor)
    _check_delegation(delegator, delegate, service, starts_at, ends_at, reason)
    with transaction.atomic():
        # Lock the delegator's row: two concurrent requests must not both pass the overlap check.
        User.objects.select_for_update().get(pk=delegator.pk)
        _refuse_overlap(delegator, service, starts_at, ends_at)
        delegation = Delegation.objects.create(
            delegator=delegator,
            delegate=delegate,
            service=service,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason.strip(),
            created_by=actor,
        )
        ledger.append(
            kind="delegation.created",
            subject=f"user:{delegator.pk}",
            actor=actor.username,
            payload={
                "delegator": delegator.username,
                "delegate": delegate.username,
                "scope": delegation.scope_label,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "reason": delegation.reason,
                "set_up_by": actor.username,
            },
        )
        if actor.pk != delegator.pk:
            _tell_delegator(delegation, actor)
    return delegation


def _check_arranger(delegator: User, delegate: User, actor: User) -> None:
    # Nobody becomes able to decide through an administrative act of their own: an
    # administrator arranging someone else's delegation cannot be its delegate.
    if actor.pk == delegator.pk:
        return
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators arrange delegations for someone else.")
    if actor.pk == delegate.pk:
        raise InvalidDelegation(
            f"You are arranging {delegator.username}'s delegation, so you cannot be its "
            "delegate: nobody gains authority through an administrative act of their own. "
            "Ask another administrator, or choose someone else.",
            fields={"delegate": ["Choose someone other than yourself."]},
        )


def _tell_delegator(delegation: Delegation, actor: User) -> None:
    """The person whose authority was lent learns who lent it, to whom and for how long."""
    notify(
        people=[delegation.delegator],
        subject=f"Your approval authority was delegated to {delegation.delegate}",
        body=f"{actor} delegated your approval authority ({delegation.scope_label}) to "
        f"{delegation.delegate} from {delegation.starts_at:%Y-%m-%d %H:%M} to "
        f"{delegation.ends_at:%Y-%m-%d %H:%M} UTC. Reason: {delegation.reason}. "
        "If this is wrong, end it on the delegations page and tell an administrator.",
        url=reverse("governance:delegation_list"),
    )


def _check_delegation(
    delegator: User,
    delegate: User,
    service: Service | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
) -> None:
    if delegator.pk == delegate.pk:
        raise InvalidDelegation(
            "Nobody can delegate to themselves.", fields={"delegate": ["Choose someone else."]}
        )
    if not reason.strip():
        raise InvalidDelegation("A reason is required.", fields={"reason": ["Required."]})
    if ends_at <= starts_at:
        raise InvalidDelegation(
            "The delegation must end after it starts.",
            fields={"ends_at": ["Must be after the start."]},
        )
    if ends_at <= timezone.now():
        raise InvalidDelegation(
            "This window is already over.", fields={"ends_at": ["Must be in the future."]}
        )
    if not delegate.is_active or delegate.is_service_account:
        raise InvalidDelegation(
            f"{delegate.username} cannot approve anything: only active people can be delegates.",
            fields={"delegate": ["Not eligible to approve."]},
        )
    if is_auditor(delegate):
        raise InvalidDelegation(
            f"{delegate.username} holds the auditor role: auditors are independent and decide "
            "nothing, so they cannot be delegates.",
            fields={"delegate": ["Auditors cannot be delegates."]},
        )
    if service is not None and not any(
        has_stage_authority(delegator, service, source) for source in STAGE_SOURCES
    ):
        raise InvalidDelegation(
            f"You hold no approval authority on {service.name} to delegate.",
            fields={"service": ["Not in your authority."]},
        )
    if service is None and not holds_any_authority(delegator):
        raise InvalidDelegation(
            "You hold no approval authority to delegate.",
            fields={"delegate": ["Nothing to delegate."]},
        )
    away = Delegation.objects.filter(delegator=delegate).overlapping(starts_at, ends_at)
    if service is not None:
        away = away.covering(service)
    if away.exists():
        raise InvalidDelegation(
            f"{delegate.username} is delegating their own authority during this window; "
            "delegations do not chain, so choose someone who is available.",
            fields={"delegate": ["Away during this window."]},
        )


def _refuse_overlap(
    delegator: User, service: Service | None, starts_at: datetime, ends_at: datetime
) -> None:
    overlapping = Delegation.objects.filter(delegator=delegator).overlapping(starts_at, ends_at)
    if service is not None:
        overlapping = overlapping.covering(service)
    clash = overlapping.select_related("delegate").first()
    if clash:
        raise InvalidDelegation(
            f"This overlaps your delegation to {clash.delegate.username} "
            f"({clash.starts_at:%Y-%m-%d %H:%M} to {clash.ends_at:%Y-%m-%d %H:%M} UTC, "
            f"{clash.scope_label}); end or revoke that one first.",
            fields={"starts_at": ["Overlaps another delegation."]},
        )


def revoke_delegation(*, delegation: Delegation, actor: User, reason: str = "") -> Delegation:
    """End a delegation now; decisions already made under it stand.

    Its delegator ends it, or an administrator (for someone suddenly away, or one set up in
    error); ending an ended delegation changes nothing.
    """
    if actor.pk != delegation.delegator_id and not is_administrator(actor):
        raise PermissionDenied("Only the delegator or an administrator ends a delegation.")
    with transaction.atomic():
        now = timezone.now()
        updated = Delegation.objects.filter(pk=delegation.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if updated:
            ledger.append(
                kind="delegation.revoked",
                subject=f"user:{delegation.delegator_id}",
                actor=actor.username,
                payload={
                    "delegation": delegation.pk,
                    "delegate": delegation.delegate.username,
                    "reason": reason,
                },
            )
    delegation.refresh_from_db()
    return delegation


def expire_role_grants(*, now: datetime | None = None) -> int:
    """Revoke every grant past its expiry (run by Celery beat); returns how many."""
    now = now or timezone.now()
    # Equivalent mutants (make mutate): dropping either select_related argument only costs a
    # query per grant; revoke_role reads the same rows either way.
    expired = RoleAssignment.objects.filter(expires_at__lte=now).select_related("user", "service")
    return sum(
        revoke_role(assignment=assignment, reason="Grant expired", actor=None)
        for assignment in expired
    )
