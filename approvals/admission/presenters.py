"""What the release page shows about image promotion across clusters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from approvals.admission.models import Admission
from approvals.models import Release
from governance.models import Platform, Target


@dataclass
class PromotionRow:
    """One cluster the release's digest was admitted into, by this release or another of the
    same service (the same artifact, promoted through environments)."""

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
    clusters of its own environment that have not admitted it yet. Two queries, whatever the
    number of clusters; empty (no card) where no cluster is registered for it to show.
    """
    admissions = (
        Admission.objects.filter(release__service_id=release.service_id, digest=release.digest)
        .select_related("cluster__environment")
        .order_by("cluster__environment__order", "first_admitted_at", "cluster__name")
    )
    rows = [_row(admission, release) for admission in admissions]
    admitted_here = {row.cluster for row in rows if row.this_release}
    clusters_here = Target.objects.filter(
        platform=Platform.KUBERNETES, environment_id=release.environment_id
    ).order_by("name")
    waiting = [c.name for c in clusters_here if c.name not in admitted_here]
    if not rows and not waiting:
        return {}
    return {
        "rows": rows,
        "waiting": waiting,
        "environment": release.environment.name,
        "digest": release.short_digest,
    }


def _row(admission: Admission, release: Release) -> PromotionRow:
    cluster = admission.cluster
    return PromotionRow(
        cluster=cluster.name,
        environment=cluster.environment.name,
        namespace=admission.namespace,
        workload=admission.workload,
        first_admitted_at=admission.first_admitted_at,
        last_admitted_at=admission.last_admitted_at,
        emergency=admission.emergency,
        release_id=admission.release_id,
        this_release=admission.release_id == release.pk,
    )
