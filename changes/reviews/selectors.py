"""What the review pages, the change and release pages and the dashboard read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, QuerySet

from changes.records.models import ChangeRecord
from changes.reviews.models import Review
from governance.authority.models import holds_everywhere
from governance.models import LedgerEntry, Service, User


@dataclass(frozen=True)
class ReviewFilters:
    status: str = ""
    kind: str = ""
    service: str = ""  # a slug
    team: str = ""  # a slug
    overdue: bool = False


def reviews_visible_to(user: User) -> QuerySet[Review]:
    """Reviews of the services whose releases `user` may see (owners included)."""
    if user.is_authenticated and user.is_active and holds_everywhere(user, "view"):
        return Review.objects.all()
    return Review.objects.filter(service__in=Service.objects.restrict(user, "view"))


def search_reviews(
    reviews: QuerySet[Review], filters: ReviewFilters, now: datetime
) -> QuerySet[Review]:
    """Filter, and load what a list row shows in the same query."""
    if filters.status:
        reviews = reviews.filter(status=filters.status)
    if filters.kind:
        reviews = reviews.filter(kind=filters.kind)
    if filters.service:
        reviews = reviews.filter(service__slug=filters.service)
    if filters.team:
        reviews = reviews.filter(service__team__slug=filters.team)
    if filters.overdue:
        reviews = reviews.overdue(now)
    return reviews.select_related("change", "service__team", "completed_by")


def reviews_for_release(release_id: int) -> list[Review]:
    """The reviews about one release, for its page (the caller has already scoped the release)."""
    return list(
        Review.objects.filter(release_id=release_id)
        .select_related("change", "service")
        .order_by("-opened_at", "-pk")
    )


def reviews_for_change(change: ChangeRecord) -> list[Review]:
    """Every review of a change (its post-mortem and its releases' reviews), newest first."""
    return list(
        Review.objects.filter(change=change)
        .select_related("change", "service")
        .order_by("-opened_at", "-pk")
    )


def review_history(review: Review) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(subject=f"review:{review.pk}").order_by("seq"))


def late_post_mortems_by_team(user: User, now: datetime) -> list[dict]:
    """Teams with overdue post-mortems on services `user` may see: team, count, oldest due.

    One query whatever the number of reviews: the dashboard flags the team, the list page
    (filtered by team) names the reviews.
    """
    return list(
        reviews_visible_to(user)
        .overdue(now)
        .filter(kind=Review.Kind.POST_MORTEM)
        .values("service__team__slug", "service__team__name")
        .annotate(count=Count("pk"), oldest_due=Min("due_at"))
        .order_by("oldest_due", "service__team__name")
    )
