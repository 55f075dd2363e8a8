"""Access reviews: find access creep and orphaned grants, and have scope owners certify them.

Usage comes from the ledger (decisions and requests people made), so the review needs nothing
from the apps that record approvals, and it sees exactly what an auditor would.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance import ledger
from governance.exceptions import GovernanceError, PermissionDenied
from governance.models import (
    AccessReview,
    AccessReviewItem,
    LedgerEntry,
    Role,
    RoleAssignment,
    User,
)
from governance.models.reviews import finding_label
from governance.services import is_administrator, revoke_role

UNUSED_AFTER = timedelta(days=90)
REVIEW_PERIOD = timedelta(days=21)
# Who is an outlier: approver on more services than this many times the median approver.
EXCESSIVE_FACTOR = 2
EXCESSIVE_MINIMUM = 4
Finding = AccessReviewItem.Finding


class InvalidCertification(GovernanceError):
    code = "invalid_certification"


def start_access_review(*, actor: User | None, now: datetime | None = None) -> AccessReview:
    """Open a campaign listing every role grant with its findings."""
    if actor is not None and not is_administrator(actor):
        raise PermissionDenied("Only administrators can start an access review.")
    now = now or timezone.now()
    grants = list(
        RoleAssignment.objects.select_related(
            "user", "service", "team", "environment", "granted_by"
        )
    )
    context = _FindingContext(grants, now)
    with transaction.atomic():
        review = AccessReview.objects.create(
            name=f"Access review {now:%Y} Q{(now.month - 1) // 3 + 1} ({now:%Y-%m-%d})",
            started_at=now,
            started_by=actor,
            due_at=now + REVIEW_PERIOD,
        )
        AccessReviewItem.objects.bulk_create(_item(review, grant, context) for grant in grants)
        ledger.append(
            kind="access_review.started",
            subject=f"access_review:{review.pk}",
            actor=actor.username if actor else "system",
            payload={
                "name": review.name,
                "grants": len(grants),
                "with_findings": sum(1 for g in grants if context.findings(g)),
            },
        )
    return review


def _item(
    review: AccessReview, grant: RoleAssignment, context: _FindingContext
) -> AccessReviewItem:
    findings = context.findings(grant)
    return AccessReviewItem(
        review=review,
        assignment=grant,
        user=grant.user,
        role=grant.role,
        service=grant.service,
        team=grant.team,
        environment=grant.environment,
        granted_at=grant.granted_at,
        granted_by=grant.granted_by.username if grant.granted_by else "system",
        findings=findings,
        finding_codes="".join(f",{f['code']}" for f in findings) + ",",
    )


class _FindingContext:
    """What the findings compare each grant against, read once per campaign."""

    def __init__(self, grants: list[RoleAssignment], now: datetime) -> None:
        self.now = now
        recent = LedgerEntry.objects.filter(recorded_at__gte=now - UNUSED_AFTER)
        self.decided = set(
            recent.filter(kind="decision.recorded").values_list("actor", "payload__service")
        )
        self.deciders = {actor for actor, _ in self.decided}
        requested = recent.filter(kind="approval.requested").values_list(
            "actor", "payload__triggered_by", "payload__service"
        )
        self.requested = {(who, service) for a, t, service in requested for who in (a, t) if who}
        self.requesters = {who for who, _ in self.requested}
        self.approver_scopes = Counter(
            g.user_id for g in grants if g.role == Role.APPROVER and g.service_id
        )
        median = statistics.median(self.approver_scopes.values()) if self.approver_scopes else 0
        self.excessive_over = max(EXCESSIVE_MINIMUM, EXCESSIVE_FACTOR * median)
        self.requests_where = {
            (g.user_id, g.service_id) for g in grants if g.role == Role.RELEASE_MANAGER
        }
        self.administrators: dict[int, bool] = {}

    def findings(self, grant: RoleAssignment) -> list[dict]:
        return [
            {"code": code, "text": text}
            for code, text in (
                self._orphaned(grant),
                self._unused(grant),
                self._excessive(grant),
                self._conflict(grant),
                self._no_expiry(grant),
                self._grantor(grant),
            )
            if code
        ]

    def _orphaned(self, grant):
        if not grant.user.is_active:
            return Finding.ORPHANED, "The person is deactivated or deprovisioned."
        return None, None

    def _unused(self, grant):
        name, slug = grant.user.username, grant.service.slug if grant.service_id else None
        if grant.role in (Role.APPROVER, Role.CAB_MEMBER):
            used = (name, slug) in self.decided if slug else name in self.deciders
        elif grant.role == Role.RELEASE_MANAGER:
            used = (name, slug) in self.requested if slug else name in self.requesters
        else:
            return None, None
        if grant.granted_at > self.now - UNUSED_AFTER or used:
            return None, None
        return Finding.UNUSED, "Not exercised in the last 90 days."

    def _excessive(self, grant):
        count = self.approver_scopes.get(grant.user_id, 0)
        if grant.role == Role.APPROVER and count > self.excessive_over:
            return Finding.EXCESSIVE, f"Approver on {count} services, far more than peers."
        return None, None

    def _conflict(self, grant):
        if grant.role == Role.APPROVER and (grant.user_id, grant.service_id) in self.requests_where:
            return Finding.EXCESSIVE, "May both request and approve releases of this service."
        return None, None

    def _no_expiry(self, grant):
        if grant.expires_at is None:
            return Finding.NO_EXPIRY, "The grant never expires."
        return None, None

    def _grantor(self, grant):
        grantor = grant.granted_by
        if grantor is None:
            return None, None
        if grantor.pk not in self.administrators:
            self.administrators[grantor.pk] = is_administrator(grantor)
        if not self.administrators[grantor.pk]:
            return (
                Finding.GRANTOR_NOT_ADMIN,
                f"Granted by {grantor.username}, no longer an administrator.",
            )
        return None, None


def can_certify(user: User, item: AccessReviewItem) -> bool:
    """Administrators certify everything; owners of a service certify the grants on it."""
    if is_administrator(user):
        return True
    return bool(item.service_id) and item.service.owners.filter(pk=user.pk).exists()


def mark_certifiable(user: User, items: list[AccessReviewItem]) -> list[AccessReviewItem]:
    """Set `can_certify` on each item for `user`, with one query whatever the page size."""
    admin = is_administrator(user)
    owned = set() if admin else set(user.owned_services.values_list("pk", flat=True))
    for item in items:
        mine = item.user_id == user.pk
        item.can_certify = not mine and (admin or item.service_id in owned)
    return items


def certify(*, item: AccessReviewItem, outcome: str, reason: str, actor: User) -> AccessReviewItem:
    """Keep or revoke one grant; a revocation takes effect at once."""
    if outcome not in (AccessReviewItem.Outcome.KEEP, AccessReviewItem.Outcome.REVOKE):
        raise InvalidCertification("Choose keep or revoke.", fields={"outcome": ["Invalid."]})
    if not reason.strip():
        raise InvalidCertification("A reason is required.", fields={"reason": ["Required."]})
    if not can_certify(actor, item):
        raise PermissionDenied("Only an administrator or an owner of the service can certify this.")
    if item.user_id == actor.pk:
        raise PermissionDenied("Nobody certifies their own access.")
    with transaction.atomic():
        locked = AccessReviewItem.objects.select_for_update().get(pk=item.pk)
        if locked.outcome != AccessReviewItem.Outcome.PENDING or locked.review.closed_at:
            raise InvalidCertification("This grant has already been certified.")
        if outcome == AccessReviewItem.Outcome.REVOKE and locked.assignment_id:
            revoke_role(
                assignment=locked.assignment, reason=f"{locked.review.name}: {reason}", actor=None
            )
        AccessReviewItem.objects.filter(pk=item.pk).update(
            outcome=outcome, reason=reason.strip(), decided_by=actor, decided_at=timezone.now()
        )
        ledger.append(
            kind="access_review.certified",
            subject=f"access_review:{item.review_id}",
            actor=actor.username,
            payload={
                "user": item.user.username,
                "role": item.role,
                "scope": item.scope_label,
                "outcome": outcome,
                "reason": reason.strip(),
                "findings": [f["code"] for f in item.findings],
            },
        )
    item.refresh_from_db()
    return item


def items_for(user: User, review: AccessReview):
    """The items `user` may see: all for administrators, their services' for owners."""
    items = review.items.select_related("user", "service", "team", "environment", "decided_by")
    if is_administrator(user):
        return items
    return items.filter(Q(service__owners=user)).distinct()


# Words for people in the first columns; the codes behind them at the end, stable for scripts
# (role_code, finding_codes space-separated, outcome_code), so the words may be reworded.
CSV_HEADER = [
    "user",
    "name",
    "role",
    "scope",
    "granted_by",
    "granted_at",
    "findings",
    "outcome",
    "decided_by",
    "decided_at",
    "reason",
    "role_code",
    "finding_codes",
    "outcome_code",
]


def csv_rows(review: AccessReview) -> Iterator[list[str]]:
    """The campaign's result, one row per grant, streamed."""
    yield CSV_HEADER
    items = review.items.select_related(
        "user", "service", "team", "environment", "decided_by"
    ).order_by("pk")
    for item in items.iterator(chunk_size=500):
        yield [
            item.user.username,
            item.user.get_full_name(),
            item.get_role_display(),
            item.scope_label,
            item.granted_by,
            item.granted_at.isoformat(),
            "; ".join(f"{finding_label(f['code'])}: {f['text']}" for f in item.findings),
            item.get_outcome_display(),
            item.decided_by.username if item.decided_by else "",
            item.decided_at.isoformat() if item.decided_at else "",
            item.reason,
            item.role,
            " ".join(f["code"] for f in item.findings),
            item.outcome,
        ]
