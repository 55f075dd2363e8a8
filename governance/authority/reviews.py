"""Access reviews: find access creep and orphaned grants, and have scope owners certify them.

Usage comes from the ledger (decisions and requests people made), so the review needs nothing
from the apps that record approvals, and it sees exactly what an auditor would.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.authority.models import (
    AccessReview,
    AccessReviewItem,
    Role,
    RoleAssignment,
    finding_label,
)
from governance.authority.services import is_administrator, revoke_role
from governance.exceptions import GovernanceError, PermissionDenied
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry
from governance.people.models import User

UNUSED_AFTER = timedelta(days=90)
REVIEW_PERIOD = timedelta(days=21)
# Who is an outlier: approver on more services than this many times the median approver.
EXCESSIVE_FACTOR = 2
EXCESSIVE_MINIMUM = 4
# The most grants one certification may cover: bounded work inside one transaction.
CERTIFY_BATCH_LIMIT = 500
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


def mark_certifiable(user: User, items: list[AccessReviewItem]) -> list[AccessReviewItem]:
    """Set `can_certify` on each item: still to certify, and `user` may; one query per page."""
    admin = is_administrator(user)
    owned = set() if admin else set(user.owned_services.values_list("pk", flat=True))
    for item in items:
        pending = item.outcome == AccessReviewItem.Outcome.PENDING
        item.can_certify = pending and _refusal(user, item, admin, owned) is None
    return items


def _refusal(user: User, item: AccessReviewItem, admin: bool, owned: set[int]) -> str | None:
    """Why `user` may not certify `item`, or None: administrators certify every grant, owners of
    a service the grants on it, and nobody their own."""
    if item.user_id == user.pk:
        return "Nobody certifies their own access"
    if not admin and item.service_id not in owned:
        return "Only an administrator, or an owner of the service, certifies a grant"
    return None


def certify(*, item: AccessReviewItem, outcome: str, reason: str, actor: User) -> AccessReviewItem:
    """Keep or revoke one grant; a revocation takes effect at once."""
    return certify_many(items=[item], outcome=outcome, reason=reason, actor=actor)[0]


def certify_many(
    *, items: Sequence[AccessReviewItem], outcome: str, reason: str, actor: User
) -> list[AccessReviewItem]:
    """Keep or revoke several grants with one reason: all of them, or none.

    Each grant is still recorded on its own (its ledger entry; a revoked role goes at once), all
    in one transaction. If `actor` may not certify any one of them, nothing is recorded.
    """
    reason = reason.strip()
    _check_certification(items, outcome, reason)
    _refuse_unless_all_certifiable(actor, items)
    with transaction.atomic(), ledger.deferred():
        locked = _lock_pending(items)
        for item in locked:
            _record_certification(item, outcome, reason, actor)
        AccessReviewItem.objects.filter(pk__in=[item.pk for item in locked]).update(
            outcome=outcome, reason=reason, decided_by=actor, decided_at=timezone.now()
        )
    decided = AccessReviewItem.objects.select_related("user", "decided_by").in_bulk(
        [item.pk for item in items]
    )
    return [decided[item.pk] for item in items]


def _check_certification(items: Sequence[AccessReviewItem], outcome: str, reason: str) -> None:
    if outcome not in (AccessReviewItem.Outcome.KEEP, AccessReviewItem.Outcome.REVOKE):
        raise InvalidCertification("Choose keep or revoke.", fields={"outcome": ["Invalid."]})
    if not reason:
        raise InvalidCertification("A reason is required.", fields={"reason": ["Required."]})
    if not items:
        raise InvalidCertification("Select at least one grant.", fields={"items": ["Required."]})
    if len(items) > CERTIFY_BATCH_LIMIT:
        raise InvalidCertification(
            f"Certify at most {CERTIFY_BATCH_LIMIT} grants at a time.",
            fields={"items": ["Too many."]},
        )


def _refuse_unless_all_certifiable(actor: User, items: Sequence[AccessReviewItem]) -> None:
    admin = is_administrator(actor)
    owned = set() if admin else set(actor.owned_services.values_list("pk", flat=True))
    refused = [(why, item) for item in items if (why := _refusal(actor, item, admin, owned))]
    if refused:
        first = refused[0][0]
        rows = [item for why, item in refused if why == first]
        raise PermissionDenied(f"{first}: {_describe(rows)}. Nothing was recorded.")


def _lock_pending(items: Sequence[AccessReviewItem]) -> list[AccessReviewItem]:
    """Lock the items, in primary-key order so that overlapping batches cannot deadlock, and
    refuse them all if another reviewer certified any of them first."""
    locked = list(
        AccessReviewItem.objects.select_for_update(of=("self",))
        .select_related("review", "assignment", "user", "service", "team", "environment")
        .filter(pk__in=[item.pk for item in items])
        .order_by("pk")
    )
    done = [
        i for i in locked if i.outcome != AccessReviewItem.Outcome.PENDING or i.review.closed_at
    ]
    if done:
        grants = "This grant has" if len(done) == 1 else "These grants have"
        raise InvalidCertification(
            f"{grants} already been certified: {_describe(done)}. Nothing was recorded."
        )
    return locked


def _record_certification(item: AccessReviewItem, outcome: str, reason: str, actor: User) -> None:
    if outcome == AccessReviewItem.Outcome.REVOKE and item.assignment_id:
        revoke_role(assignment=item.assignment, reason=f"{item.review.name}: {reason}", actor=None)
    ledger.append(
        kind="access_review.certified",
        subject=f"access_review:{item.review_id}",
        actor=actor.username,
        payload={
            "user": item.user.username,
            "role": item.role,
            "scope": item.scope_label,
            "outcome": outcome,
            "reason": reason,
            "findings": [f["code"] for f in item.findings],
        },
    )


def _describe(items: Sequence[AccessReviewItem], shown: int = 5) -> str:
    """Names the first few grants, e.g. "bob (Approver, payments-api)", and counts the rest."""
    names = [f"{i.user.username} ({i.get_role_display()}, {i.scope_label})" for i in items]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


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


def csv_rows(user: User, review: AccessReview) -> Iterator[list[str]]:
    """The campaign's result as `user` may see it (`items_for`), one row per grant, streamed."""
    yield CSV_HEADER
    for item in items_for(user, review).order_by("pk").iterator(chunk_size=500):
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
