"""Reads of clusters: the webhook's lookup and the administrators' list."""

from __future__ import annotations

from django.db.models import Count, Max, QuerySet

from governance.models import Platform, Target


def clusters() -> QuerySet[Target]:
    """Registered Kubernetes clusters with their environment, how many releases each admitted
    and when last, for the list page (one query whatever their number)."""
    return (
        Target.objects.filter(platform=Platform.KUBERNETES)
        .select_related("environment")
        .annotate(
            admitted=Count("admissions"), last_admitted_at=Max("admissions__last_admitted_at")
        )
        .order_by("environment__order", "name")
    )


def cluster_by_slug(slug: str) -> Target | None:
    """The cluster an admission URL names, with its environment (one query)."""
    return (
        Target.objects.filter(platform=Platform.KUBERNETES, slug=slug)
        .select_related("environment")
        .first()
    )
