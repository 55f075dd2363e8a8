"""Changing a policy: published at once, or held for a second administrator (four eyes).

A change waits for a second administrator when its author holds approval authority: nobody
alone changes the rules that govern their own approvals.
"""

from __future__ import annotations

import difflib

import yaml
from django.db import transaction
from django.utils import timezone

from governance.authority.models import Role, RoleAssignment
from governance.authority.services import is_administrator
from governance.exceptions import InvalidPolicy, PermissionDenied
from governance.ledger import services as ledger
from governance.people.models import User
from governance.policy import engine as policy
from governance.policy.models import Policy, PolicyProposal, PolicyVersion


def change_policy(
    *,
    policy_obj: Policy,
    source: str,
    actor: User,
    comment: str = "",
    loosening: list[str] | None = None,
) -> PolicyVersion | PolicyProposal:
    """Publish `source` now, or propose it for a second administrator: when `actor` is governed
    by the policy themselves, when it changes the standard change catalogue (pre-approvals are
    approved by two people), or when it loosens requirements on regulated environments
    (`loosening`, what simulation found; the second administrator must confirm it)."""
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators change policies.")
    _validate(source)
    loosening = [item for item in loosening or [] if item]
    four_eyes = (
        needs_second_administrator(actor)
        or bool(loosening)
        or changes_standard_changes(policy_obj.source, source)
    )
    if not four_eyes:
        return publish_policy(policy_obj=policy_obj, source=source, actor=actor, comment=comment)
    with transaction.atomic():
        # Locked so that no version is published between reading it and proposing against it.
        base = Policy.objects.select_for_update().get(pk=policy_obj.pk)
        proposal = PolicyProposal.objects.create(
            policy=base,
            source=source,
            comment=comment,
            proposed_by=actor,
            loosening=loosening,
            base_version=base.version,
        )
        ledger.append(
            kind="policy.proposed",
            subject=f"policy:{policy_obj.pk}",
            actor=actor.username,
            payload={
                "policy": policy_obj.slug,
                "proposal": proposal.pk,
                "checksum": policy.checksum(source),
                "comment": comment,
                "loosening": loosening,
                "base_version": base.version,
            },
        )
    return proposal


def changes_standard_changes(published: str, draft: str) -> bool:
    """Whether `draft` adds or alters a standard change template: each one approves releases
    without anyone deciding, so two administrators approve it. Removing one only tightens."""
    before = _catalogue(published)
    return any(before.get(key) != template for key, template in _catalogue(draft).items())


def _catalogue(source: str) -> dict:
    try:
        document = yaml.safe_load(source) if source else None
    except yaml.YAMLError:
        return {}
    templates = document.get("standard_changes") if isinstance(document, dict) else None
    if not isinstance(templates, list):
        return {}
    return {str(t.get("id")): t for t in templates if isinstance(t, dict)}


def needs_second_administrator(actor: User) -> bool:
    """Whether `actor` could approve releases under the policy: an approver or CAB role, or
    ownership of a service. (A superuser's blanket permissions do not make them an approver.)"""
    approves = RoleAssignment.objects.filter(
        user=actor, role__in=[Role.APPROVER, Role.CAB_MEMBER]
    ).exists()
    return approves or actor.owned_services.exists()


def _validate(source: str) -> None:
    try:
        policy.parse(source)
    except policy.PolicyError as exc:
        raise InvalidPolicy(str(exc), fields={"source": [str(exc)]}) from None


def approve_proposal(
    *,
    proposal: PolicyProposal,
    actor: User,
    reason: str = "",
    confirm_loosening: bool = False,
) -> PolicyVersion:
    """A second administrator publishes the proposed change; one that loosens requirements on
    regulated environments needs their explicit `confirm_loosening`. A stale proposal (another
    version published since) is refused: what it loosens was judged against other rules, and
    publishing it would silently undo the versions in between."""
    _check_decider(proposal, actor)
    with transaction.atomic():
        locked = _lock_pending(proposal)
        _check_current(locked)
        if locked.loosening and not confirm_loosening:
            raise PermissionDenied(
                "This change loosens requirements on regulated environments; confirm the "
                "loosening explicitly to publish it.",
                fields={"confirm_loosening": ["Required for a loosening change."]},
            )
        version = publish_policy(
            policy_obj=locked.policy,
            source=locked.source,
            actor=actor,
            comment=f"{locked.comment} (proposed by {locked.proposed_by.username}, "
            f"approved by {actor.username})".strip(),
        )
        _close(locked, PolicyProposal.Outcome.APPROVED, actor, reason)
        if locked.loosening:
            PolicyProposal.objects.filter(pk=locked.pk).update(loosening_confirmed=True)
            ledger.append(
                kind="policy.loosening_confirmed",
                subject=f"policy:{locked.policy_id}",
                actor=actor.username,
                payload={
                    "proposal": locked.pk,
                    "version": version.number,
                    "loosening": locked.loosening,
                },
            )
    return version


def reject_proposal(*, proposal: PolicyProposal, actor: User, reason: str) -> PolicyProposal:
    if not reason.strip():
        raise PermissionDenied("A reason is required to reject.", fields={"reason": ["Required."]})
    _check_decider(proposal, actor)
    with transaction.atomic():
        locked = _lock_pending(proposal)
        _close(locked, PolicyProposal.Outcome.REJECTED, actor, reason)
        ledger.append(
            kind="policy.proposal_rejected",
            subject=f"policy:{locked.policy_id}",
            actor=actor.username,
            payload={"proposal": locked.pk, "reason": reason},
        )
    proposal.refresh_from_db()
    return proposal


def _check_decider(proposal: PolicyProposal, actor: User) -> None:
    if not is_administrator(actor):
        raise PermissionDenied("Only administrators decide policy changes.")
    if actor.pk == proposal.proposed_by_id:
        raise PermissionDenied("A second administrator must decide; not the one who proposed it.")


def _check_current(proposal: PolicyProposal) -> None:
    """Refuse a proposal made against an older version of its policy (locked: no version is
    published while this one is decided)."""
    current = Policy.objects.select_for_update().get(pk=proposal.policy_id).version
    if current != proposal.base_version:
        raise PermissionDenied(
            f"{proposal.policy.name} has changed since this was proposed (v{proposal.base_version}"
            f" then, v{current} now), so its diff and what it loosens no longer hold. Reject it;"
            " its author proposes the change again against the current version."
        )


def _lock_pending(proposal: PolicyProposal) -> PolicyProposal:
    locked = PolicyProposal.objects.select_for_update().select_related("policy", "proposed_by")
    locked = locked.get(pk=proposal.pk)
    if locked.outcome != PolicyProposal.Outcome.PENDING:
        raise PermissionDenied("This proposal has already been decided.")
    return locked


def _close(proposal: PolicyProposal, outcome: str, actor: User, reason: str) -> None:
    PolicyProposal.objects.filter(pk=proposal.pk).update(
        outcome=outcome, decided_by=actor, decided_at=timezone.now(), reason=reason
    )


def diff(proposal: PolicyProposal) -> str:
    """The proposed change as a unified diff against the policy as published now."""
    return "".join(
        difflib.unified_diff(
            proposal.policy.source.splitlines(keepends=True),
            proposal.source.splitlines(keepends=True),
            fromfile=f"{proposal.policy.slug} v{proposal.policy.version}",
            tofile="proposed",
        )
    )


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
