"""Identity provisioning actions (SCIM from Okta / Entra ID), each one transaction with its ledger.

People and groups arrive from the identity provider; roles follow group membership through
`GroupRoleMapping`. Roles are still granted and revoked only by `governance.authority.services`,
so guardian permissions and the ledger stay in step, and only grants a mapping made are ever
taken back.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.authority.models import RoleAssignment, Service
from governance.authority.services import grant_role, is_administrator, revoke_role
from governance.exceptions import IdentityConflict, PermissionDenied
from governance.identity.models import GroupRoleMapping, IdentityGroup, MappedRoleGrant, ScimToken
from governance.identity.tokens import revoke_user_tokens
from governance.ledger import services as ledger
from governance.people.models import User
from governance.people.selectors import people_named

# --- SCIM tokens -------------------------------------------------------------------------------


def issue_scim_token(*, name: str, actor: User | None) -> tuple[ScimToken, str]:
    """Create a SCIM bearer token; returns the row and the secret, which is never shown again."""
    key = ScimToken.generate_key()
    with transaction.atomic():
        token = ScimToken.objects.create(
            name=name,
            key_hash=ScimToken.hash_key(key),
            key_prefix=key[:10],
            created_by=actor,
        )
        ledger.append(
            kind="identity.scim_token_issued",
            subject=f"scim_token:{token.pk}",
            actor=actor.username if actor else "system",
            payload={"name": name, "prefix": token.key_prefix},
        )
    return token, key


def revoke_scim_token(*, token: ScimToken, actor: User) -> None:
    """Stop a SCIM token working at once."""
    with transaction.atomic():
        if ScimToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            ledger.append(
                kind="identity.scim_token_revoked",
                subject=f"scim_token:{token.pk}",
                actor=actor.username,
                payload={"name": token.name, "prefix": token.key_prefix},
            )


def authenticate_scim_token(key: str) -> ScimToken | None:
    """The unrevoked token for a presented secret, recording its use at most once a minute."""
    token = ScimToken.objects.active().filter(key_hash=ScimToken.hash_key(key)).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ScimToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


# --- People ------------------------------------------------------------------------------------


def provision_user(*, user: User, source: str) -> User:
    """Create or update a person as the identity provider describes them (unsaved `user`).

    userName is unique regardless of case (RFC 7643 §4.1.1). Turning `is_active` off takes away
    every authority at once: approvals, scopes and tokens all re-check it.
    """
    with transaction.atomic():
        previous = User.objects.select_for_update().filter(pk=user.pk).first() if user.pk else None
        if previous is None or previous.username != user.username:
            check_username_free(user.username, exclude_pk=user.pk)
        try:
            # A savepoint, so a race lost on the unique index leaves the outer transaction usable.
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise IdentityConflict(f"userName '{user.username}' is already taken.") from None
        _record_user_change(user, previous, source)
        if not user.is_active:
            # Switched off (now, or earlier by a path that left tokens behind): the tokens die
            # for good, so a later reactivation revives none of them.
            revoke_user_tokens(
                user=user, source=source, reason="Owner deactivated by the identity provider"
            )
    return user


def check_username_free(username: str, *, exclude_pk: int | None = None) -> None:
    """Refuse a username that is taken or looks like one that is (IdentityConflict).

    'alice' spelt with a Cyrillic a (U+0430), or followed by a zero-width space, would pass for
    alice in every list and e-mail, and could slip past the conflict-of-interest checks.
    """
    clash = people_named(username, emails=False).exclude(pk=exclude_pk).only("username")
    if any(p.username.lower() == username.lower() for p in clash[:20]):
        raise IdentityConflict(f"userName '{username}' is already taken.")
    alike = clash.first()
    if alike:
        raise IdentityConflict(
            f"userName '{username}' looks like the existing '{alike.username}' (confusable "
            "characters or invisible ones); choose a name that cannot be mistaken for it."
        )


def _record_user_change(user: User, previous: User | None, source: str) -> None:
    subject = f"user:{user.pk}"
    if previous is None:
        payload = {"user": user.username, "active": user.is_active, "source": source}
        ledger.append(kind="identity.provisioned", subject=subject, actor=source, payload=payload)
        return
    if previous.username != user.username:
        payload = {"from": previous.username, "to": user.username}
        ledger.append(kind="identity.renamed", subject=subject, actor=source, payload=payload)
    if previous.is_active != user.is_active:
        kind = "identity.reactivated" if user.is_active else "identity.deactivated"
        payload = {"user": user.username, "reason": "Set by the identity provider"}
        ledger.append(kind=kind, subject=subject, actor=source, payload=payload)


def deactivate_user(*, user: User, source: str, reason: str) -> User:
    """Switch a person off (rows stay: approvals reference them). Idempotent."""
    with transaction.atomic():
        # Conditional update: a second deactivation writes no second ledger entry.
        changed = User.objects.filter(pk=user.pk, is_active=True).update(is_active=False)
        if changed:
            ledger.append(
                kind="identity.deactivated",
                subject=f"user:{user.pk}",
                actor=source,
                payload={"user": user.username, "reason": reason},
            )
        # Even when already off: a token another path left active must not survive reactivation.
        revoke_user_tokens(user=user, source=source, reason=f"Owner deactivated: {reason}")
    user.refresh_from_db()
    return user


# --- Groups and the roles they carry -----------------------------------------------------------


def provision_group(
    *, group: IdentityGroup, members: Iterable[User] | None, source: str
) -> IdentityGroup:
    """Create or rename a group (unsaved `group`); `members`, when given, become its membership."""
    with transaction.atomic():
        created = group.pk is None
        group.save()
        if created:
            ledger.append(
                kind="identity.group_created",
                subject=f"identity_group:{group.pk}",
                actor=source,
                payload={"group": group.name, "external_id": group.scim_external_id or ""},
            )
        if members is not None:
            wanted = {user.pk: user for user in members}
            current = set(group.members.values_list("pk", flat=True))
            apply_group_membership(
                group=group,
                add=[user for pk, user in wanted.items() if pk not in current],
                remove=list(User.objects.filter(pk__in=current - wanted.keys())),
                source=source,
            )
    return group


def apply_group_membership(
    *, group: IdentityGroup, add: Iterable[User], remove: Iterable[User], source: str
) -> IdentityGroup:
    """Add and remove members, granting and revoking the roles the group's mappings carry."""
    with transaction.atomic():
        # Lock the group: two concurrent PATCHes must not both decide a grant is (not) needed.
        IdentityGroup.objects.select_for_update().get(pk=group.pk)
        current = set(group.members.values_list("pk", flat=True))
        added = [user for user in add if user.pk not in current]
        removed = [user for user in remove if user.pk in current]
        if not added and not removed:
            return group
        mappings = list(group.role_mappings.select_related("service"))
        group.members.add(*added)
        group.members.remove(*removed)
        for user in added:
            for mapping in mappings:
                _grant_mapped(mapping, user)
        for user in removed:
            for mapping in mappings:
                _release_mapped(mapping, user)
        ledger.append(
            kind="identity.group_membership_changed",
            subject=f"identity_group:{group.pk}",
            actor=source,
            payload={
                "group": group.name,
                "added": sorted(user.username for user in added),
                "removed": sorted(user.username for user in removed),
            },
        )
    return group


def delete_group(*, group: IdentityGroup, source: str) -> None:
    """The provider deleted the group: members lose its mapped roles, then the group goes."""
    with transaction.atomic():
        apply_group_membership(group=group, add=[], remove=list(group.members.all()), source=source)
        ledger.append(
            kind="identity.group_deleted",
            subject=f"identity_group:{group.pk}",
            actor=source,
            payload={"group": group.name},
        )
        group.delete()


def add_role_mapping(
    *, group: IdentityGroup, role: str, service: Service | None, reason: str, actor: User | None
) -> GroupRoleMapping:
    """Map a group to a role on a scope and grant it to the group's current members.

    Grants are made as the system, so the rules for people granting roles are checked here:
    only administrators map groups, and never a group they belong to (that would be a self-grant).
    """
    if actor is not None and not is_administrator(actor):
        raise PermissionDenied("Only administrators can map groups to roles.")
    if actor is not None and group.members.filter(pk=actor.pk).exists():
        raise PermissionDenied("You are a member of this group; another administrator must map it.")
    if not reason.strip():
        raise PermissionDenied("A reason is required.", fields={"reason": ["Required."]})
    with transaction.atomic():
        IdentityGroup.objects.select_for_update().get(pk=group.pk)
        mapping = GroupRoleMapping.objects.create(
            group=group, role=role, service=service, reason=reason, created_by=actor
        )
        for user in group.members.all():
            _grant_mapped(mapping, user)
        ledger.append(
            kind="identity.group_mapping_added",
            subject=f"identity_group:{group.pk}",
            actor=actor.username if actor else "system",
            payload=_mapping_payload(mapping),
        )
    return mapping


def remove_role_mapping(*, mapping: GroupRoleMapping, actor: User | None) -> None:
    """Delete a mapping, revoking the grants that only it provided."""
    with transaction.atomic():
        IdentityGroup.objects.select_for_update().get(pk=mapping.group_id)
        for user in mapping.group.members.all():
            _release_mapped(mapping, user)
        ledger.append(
            kind="identity.group_mapping_removed",
            subject=f"identity_group:{mapping.group_id}",
            actor=actor.username if actor else "system",
            payload=_mapping_payload(mapping),
        )
        mapping.delete()


def _mapping_payload(mapping: GroupRoleMapping) -> dict:
    return {
        "group": mapping.group.name,
        "role": mapping.role,
        "scope": mapping.scope_label,
        "reason": mapping.reason,
    }


def _grant_mapped(mapping: GroupRoleMapping, user: User) -> None:
    existing = RoleAssignment.objects.filter(
        user=user, role=mapping.role, service=mapping.service
    ).first()
    if existing is not None and not existing.mapped_grants.exists():
        # Granted by hand: that grant is an administrator's, and group sync never touches it.
        return
    assignment = existing or grant_role(
        user=user,
        role=mapping.role,
        service=mapping.service,
        reason=f"Member of identity group '{mapping.group.name}' (SCIM group mapping)",
        actor=None,
    )
    MappedRoleGrant.objects.get_or_create(mapping=mapping, assignment=assignment)


def _release_mapped(mapping: GroupRoleMapping, user: User) -> None:
    link = (
        MappedRoleGrant.objects.filter(mapping=mapping, assignment__user=user)
        .select_related("assignment__user", "assignment__service")
        .first()
    )
    if link is None:
        return
    assignment = link.assignment
    link.delete()
    # Another group may carry the same role on the same scope: then the grant stays.
    if not assignment.mapped_grants.exists():
        revoke_role(
            assignment=assignment,
            reason=f"No longer in identity group '{mapping.group.name}' (SCIM group mapping)",
            actor=None,
        )
