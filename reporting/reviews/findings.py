"""What a quarterly review lists: the quarter's acts that went around the normal approval path.

Each finder reads one kind of act in one or two queries and returns unsaved items, with the people
whose act it is (`involved`): they may not record its outcome. Times are UTC, like the records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, F, Max, Q
from django.urls import reverse

from approvals.emergencies.models import EmergencyException
from approvals.models import Deployment, Release
from changes.freezes.models import FreezeOverride
from changes.reviews.models import Review
from governance.models import User
from reporting.reviews.models import QuarterlyReviewItem

Kind = QuarterlyReviewItem.Kind


def quarter_items(start: datetime, end: datetime) -> list[QuarterlyReviewItem]:
    """Every item of the quarter [start, end), kind by kind, oldest first within each."""
    return [
        *freeze_overrides(start, end),
        *emergencies(start, end),
        *late_post_mortems(start, end),
        *unapproved_deployments(start, end),
    ]


def freeze_overrides(start: datetime, end: datetime) -> list[QuarterlyReviewItem]:
    """Confirmed freeze overrides asked for in the quarter: the policy exceptions granted.

    An override awaiting confirmation let nothing through, so it is not an exception yet. The
    release's requester benefited from it, so it is their act too.
    """
    overrides = list(
        FreezeOverride.objects.filter(
            confirmed_at__isnull=False, requested_at__gte=start, requested_at__lt=end
        )
        .select_related("freeze", "requested_by", "confirmed_by")
        .order_by("requested_at", "pk")
    )
    releases = Release.objects.select_related("service", "requested_by", "triggered_by").in_bulk(
        [override.release_id for override in overrides]
    )
    items = []
    for override in overrides:
        release = releases.get(override.release_id)
        people = [override.requested_by, override.confirmed_by]
        if release is not None:
            people += [release.requested_by, release.triggered_by]
        items.append(
            _item(
                Kind.FREEZE_OVERRIDE,
                override.pk,
                title=f"{override.release_label} through {override.freeze.name}",
                detail=f"Reason: {override.reason}",
                occurred_at=override.requested_at,
                service=release.service if release else None,
                url=reverse("changes:freeze_detail", args=[override.freeze_id]),
                people=people,
            )
        )
    return items


def emergencies(start: datetime, end: datetime) -> list[QuarterlyReviewItem]:
    """Emergencies declared in the quarter: each bypassed the normal path for a few hours."""
    declared = (
        EmergencyException.objects.filter(starts_at__gte=start, starts_at__lt=end)
        .select_related("change__author", "service", "declared_by")
        .order_by("starts_at", "pk")
    )
    return [
        _item(
            Kind.EMERGENCY,
            emergency.pk,
            title=f"{emergency.change.ref} · {emergency.service.name}",
            detail=f"Justification: {emergency.justification} {_secondary_review(emergency)}.",
            occurred_at=emergency.starts_at,
            service=emergency.service,
            url=reverse("emergencies:emergency_detail", args=[emergency.pk]),
            people=[emergency.declared_by, emergency.change.author],
        )
        for emergency in declared
    ]


def _secondary_review(emergency: EmergencyException) -> str:
    if emergency.secondary_review == EmergencyException.Review.PENDING:
        return EmergencyException.Review.PENDING.label
    return f"CAB secondary review: {emergency.get_secondary_review_display()}"


def late_post_mortems(start: datetime, end: datetime) -> list[QuarterlyReviewItem]:
    """Post-mortems due in the quarter that were completed late or are still open.

    The review starts after the quarter has ended, so an open one is overdue by then.
    """
    late = (
        Review.objects.filter(kind=Review.Kind.POST_MORTEM, due_at__gte=start, due_at__lt=end)
        .filter(Q(status=Review.Status.OPEN) | Q(completed_at__gt=F("due_at")))
        .select_related("change__author", "change__emergency__declared_by", "service")
        .order_by("due_at", "pk")
    )
    items = []
    for review in late:
        emergency = getattr(review.change, "emergency", None)
        items.append(
            _item(
                Kind.LATE_POST_MORTEM,
                review.pk,
                title=f"{review.change.ref} · {review.service.name}",
                detail=_lateness(review),
                occurred_at=review.due_at,
                service=review.service,
                url=reverse("changes:review_detail", args=[review.pk]),
                people=[review.change.author, emergency.declared_by if emergency else None],
            )
        )
    return items


def _lateness(review: Review) -> str:
    due = f"Due {review.due_at:%Y-%m-%d}"
    if review.completed_at is None:
        return f"{due}; still open."
    days = (review.completed_at - review.due_at).days
    late = "less than a day" if days < 1 else f"{days} day{'s' if days != 1 else ''}"
    return f"{due}; completed {review.completed_at:%Y-%m-%d}, {late} late."


def unapproved_deployments(start: datetime, end: datetime) -> list[QuarterlyReviewItem]:
    """Releases deployed in the quarter without the gate's approval, one item per release."""
    in_quarter = Q(
        deployments__approved=False,
        deployments__created_at__gte=start,
        deployments__created_at__lt=end,
    )
    releases = (
        Release.objects.filter(in_quarter)
        .annotate(
            unapproved=Count("deployments", filter=in_quarter),
            last=Max("deployments__created_at", filter=in_quarter),
        )
        .select_related("service", "environment", "requested_by", "triggered_by")
        .order_by("last", "pk")
    )
    # Whoever reported an unapproved deployment deployed it: their act too.
    deployers = defaultdict(list)
    for deployment in Deployment.objects.filter(
        release__in=releases, approved=False, created_at__gte=start, created_at__lt=end
    ).select_related("reported_by"):
        deployers[deployment.release_id].append(deployment.reported_by)
    return [
        _item(
            Kind.UNAPPROVED_DEPLOYMENT,
            release.pk,
            title=f"{release.service.name} {release.version} → {release.environment.name}",
            detail=(
                f"{release.unapproved} deployment{'s' if release.unapproved != 1 else ''} "
                "the gate had not approved, "
                f"the last on {release.last:%Y-%m-%d %H:%M} UTC."
            ),
            occurred_at=release.last,
            service=release.service,
            url=reverse("approvals:release_detail", args=[release.pk]),
            people=[release.requested_by, release.triggered_by, *deployers[release.pk]],
        )
        for release in releases
    ]


def _item(
    kind: str,
    source_id: int,
    *,
    people: Iterable[User | None],
    **fields,
) -> QuarterlyReviewItem:
    involved = list({person.pk: person for person in people if person is not None}.values())
    return QuarterlyReviewItem(
        kind=kind,
        source_id=source_id,
        involved=[person.pk for person in involved],
        involved_names=", ".join(person.username for person in involved)[:300],
        **fields,
    )
