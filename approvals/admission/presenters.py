"""What the release page shows about image promotion across clusters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import FilteredRelation, Q

from approvals.models import Release
from governance.models import Platform, Target


@dataclass
class PromotionRow:
    """One cluster the release's digest was admitted into, by this release or another naming
    the same digest (the same artifact, promoted through environments)."""

    cluster: str
    environment: str
    namespace: str
    workload: str
    first_admitted_at: datetime
    last_admitted_at: datetime
    emergency: bool
    release_id: int
    this_release: bool


def promotion_panel(release: Release) -> dict:
    """The clusters where the release's digest was admitted, along its promotion path, and the
    clusters of its own environment that have not admitted it yet. One query, whatever the
    number of clusters; empty (no card) where no cluster is registered for it to show.
    """
    # By digest: the same artifact, whichever release (environment) let it into a cluster.
    admitted = FilteredRelation("admissions", condition=Q(admissions__digest=release.digest))
    # Every cluster holding the digest, and this environment's clusters with or without it:
    # one left join, so a cluster still waiting comes back with empty admission columns.
    clusters = (
        Target.objects.filter(platform=Platform.KUBERNETES)
        .annotate(admitted=admitted)
        .filter(Q(environment_id=release.environment_id) | Q(admitted__id__isnull=False))
        .order_by("environment__order", "admitted__first_admitted_at", "name")
        .values("name", "environment__name", *(f"admitted__{f}" for f in ADMISSION_FIELDS))
    )
    rows, waiting = [], []
    for cluster in clusters:
        if cluster["admitted__release_id"] is None:
            waiting.append(cluster["name"])
        else:
            rows.append(_row(cluster, release))
    if not rows and not waiting:
        return {}
    return {
        "rows": rows,
        "waiting": waiting,
        "environment": release.environment.name,
        "digest": release.short_digest,
    }


ADMISSION_FIELDS = (
    "namespace",
    "workload",
    "first_admitted_at",
    "last_admitted_at",
    "emergency",
    "release_id",
)


def _row(cluster: dict, release: Release) -> PromotionRow:
    values = {name: cluster[f"admitted__{name}"] for name in ADMISSION_FIELDS}
    return PromotionRow(
        cluster=cluster["name"],
        environment=cluster["environment__name"],
        this_release=values["release_id"] == release.pk,
        **values,
    )
