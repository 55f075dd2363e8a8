"""Refreshing the metrics' rollups (reporting.metrics.models) from the approval records.

The unit of work is a release: whenever anything about it changed since the last refresh (its
request closed, a stage finished, a decision was made or revoked, a deployment was reported or
verified, a new request superseded it), all its fact rows are deleted and written again, in one
transaction per batch. A rerun therefore writes the same rows, and an interrupted run loses
nothing: the watermark only moves once every batch is in.

Each run looks back a little before the last watermark (OVERLAP), so a transaction that began
before the previous run and committed after it is still picked up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Deployment, Release
from reporting.metrics.models import (
    Abandonment,
    DecisionFact,
    DelayBucket,
    MetricsRefresh,
    ReleaseFact,
    StageFact,
)

BATCH = 2000
OVERLAP = timedelta(minutes=10)
# After rebuilding this many releases, PostgreSQL's statistics of the facts are refreshed at
# once rather than whenever autovacuum comes by: a fresh table's estimates (a few hundred rows
# for tens of thousands) turn the pages' aggregates into nested loops.
ANALYZE_AFTER = 5000
Status = ApprovalRequest.Status
# Upper bounds (seconds, exclusive) of each delay bucket; the last is open-ended.
DELAY_BOUNDS = (
    (3600, DelayBucket.UNDER_HOUR),
    (4 * 3600, DelayBucket.HOURS),
    (24 * 3600, DelayBucket.DAY),
    (72 * 3600, DelayBucket.DAYS),
)


def refresh_metrics(*, full: bool = False) -> int:
    """Bring the rollups up to date; returns how many releases were rebuilt.

    `full` rebuilds every release (after a bulk import, or to repair the rollups by hand).
    """
    started = timezone.now()
    state = MetricsRefresh.objects.order_by("pk").first()
    since = None if full or state is None else state.refreshed_through - OVERLAP
    rebuilt = 0
    for batch in _batches(changed_release_ids(since), BATCH):
        rebuild_releases(batch)
        rebuilt += len(batch)
    if rebuilt >= ANALYZE_AFTER:
        _analyze()
    MetricsRefresh.objects.update_or_create(
        pk=state.pk if state else None,
        defaults={"refreshed_through": started, "finished_at": timezone.now(), "releases": rebuilt},
    )
    return rebuilt


def changed_release_ids(since: datetime | None) -> list[int]:
    """Releases with something new since `since` (every release with a request, if None)."""
    if since is None:
        return list(ApprovalRequest.objects.order_by("release").values_list("release", flat=True))
    sources = (
        (
            ApprovalRequest.objects.filter(Q(requested_at__gte=since) | Q(decided_at__gte=since)),
            "release",
        ),
        (ApprovalStage.objects.filter(completed_at__gte=since), "request__release"),
        (
            Decision.all_objects.filter(Q(created_at__gte=since) | Q(revoked_at__gte=since)),
            "request__release",
        ),
        (
            Deployment.objects.filter(Q(created_at__gte=since) | Q(verified_at__gte=since)),
            "release",
        ),
        # A new request asking again for an old one makes the old one superseded.
        (Release.objects.filter(created_at__gte=since, previous__isnull=False), "previous"),
    )
    ids: set[int] = set()
    for rows, release in sources:
        ids.update(rows.values_list(release, flat=True))
    return sorted(ids)


def rebuild_releases(release_ids: list[int]) -> None:
    """Replace every fact row of these releases with rows made from their records now."""
    releases = _releases(release_ids)
    stages = _finished_stages(release_ids)
    decisions = _standing_decisions(release_ids)
    with transaction.atomic():
        for model in (ReleaseFact, StageFact, DecisionFact):
            model.objects.filter(release__in=release_ids).delete()
        ReleaseFact.objects.bulk_create(_release_facts(releases))
        StageFact.objects.bulk_create(_stage_facts(stages))
        DecisionFact.objects.bulk_create(_decision_facts(decisions))


def _analyze() -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (ReleaseFact, StageFact, DecisionFact):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def delay_bucket(seconds: int) -> str:
    """The bucket a wait of `seconds` falls in."""
    for bound, bucket in DELAY_BOUNDS:
        if seconds < bound:
            return bucket
    return DelayBucket.LONGER


# What each fact copies from its release, as paths from the release (see _dimensions).
DIMENSIONS = {
    "release_id": "pk",
    "service_id": "service",
    "team_id": "service__team",
    "environment_id": "environment",
    "change_type": "change__type",
}


def _dimension_paths(prefix: str) -> dict[str, str]:
    """The dimensions' paths from a row reaching the release through `prefix`, under names
    that cannot clash with the row's own fields."""
    return {f"fact_{name}": f"{prefix}{path}" for name, path in DIMENSIONS.items()}


def _dimensions(row: dict) -> dict:
    return {name: row[f"fact_{name}"] for name in DIMENSIONS}


def _releases(release_ids: list[int]) -> Iterable[dict]:
    """Plain rows, never model instances: loading the requests' JSON plans would cost more
    than everything else together."""
    deployments = Deployment.objects.filter(release=OuterRef("pk"))
    return (
        Release.objects.filter(pk__in=release_ids)
        .exclude(approval__status=Status.PENDING)
        .annotate(
            superseded=Exists(Release.objects.filter(previous=OuterRef("pk"))),
            deployed=Exists(deployments),
            failed=Exists(
                deployments.filter(
                    Q(status__in=(Deployment.Status.FAILED, Deployment.Status.ROLLED_BACK))
                    | Q(verification=Deployment.Verification.FAILED)
                )
            ),
            rolled_back=Exists(deployments.filter(status=Deployment.Status.ROLLED_BACK)),
        )
        .values(
            "superseded",
            "deployed",
            "failed",
            "rolled_back",
            status=F("approval__status"),
            requested_at=F("approval__requested_at"),
            decided_at=F("approval__decided_at"),
            **{name: F(path) for name, path in _dimension_paths("").items()},
        )
    )


def _release_facts(releases: Iterable[dict]) -> Iterator[ReleaseFact]:
    for row in releases:
        seconds = None
        if row["status"] == Status.APPROVED:
            seconds = _seconds(row["decided_at"] - row["requested_at"])
        yield ReleaseFact(
            **_dimensions(row),
            requested_at=row["requested_at"],
            decided_at=row["decided_at"],
            outcome=row["status"],
            abandonment=_abandonment(row["status"], row["superseded"]),
            approve_seconds=seconds,
            delay_bucket=delay_bucket(seconds) if seconds is not None else "",
            deployed=row["deployed"],
            failed=row["failed"],
            rolled_back=row["rolled_back"],
        )


def _abandonment(status: str, superseded: bool) -> str:
    """Superseded first: a withdrawn request asked again was replaced, not given up."""
    if status == Status.APPROVED:
        return ""
    if superseded:
        return Abandonment.SUPERSEDED
    if status in (Status.WITHDRAWN, Status.EXPIRED):
        return status
    return ""  # rejected and not asked again: decided, not abandoned


def _finished_stages(release_ids: list[int]) -> Iterable[dict]:
    return ApprovalStage.objects.filter(
        request__release__in=release_ids, activated_at__isnull=False, completed_at__isnull=False
    ).values(
        "pk",
        "key",
        "name",
        "status",
        "activated_at",
        "completed_at",
        "due_at",
        **{name: F(path) for name, path in _dimension_paths("request__release__").items()},
    )


def _stage_facts(stages: Iterable[dict]) -> Iterator[StageFact]:
    for row in stages:
        activated, completed, due = row["activated_at"], row["completed_at"], row["due_at"]
        yield StageFact(
            **_dimensions(row),
            stage_id=row["pk"],
            key=row["key"],
            name=row["name"],
            outcome=row["status"],
            activated_at=activated,
            completed_at=completed,
            wait_seconds=_seconds(completed - activated),
            sla_seconds=_seconds(due - activated) if due else None,
            breached=due is not None and completed > due,
        )


def _standing_decisions(release_ids: list[int]) -> Iterable[dict]:
    return Decision.objects.filter(
        request__release__in=release_ids, stage__activated_at__isnull=False
    ).values(
        "pk",
        "approver_id",
        "verdict",
        "created_at",
        stage_key=F("stage__key"),
        activated_at=F("stage__activated_at"),
        **{name: F(path) for name, path in _dimension_paths("request__release__").items()},
    )


def _decision_facts(decisions: Iterable[dict]) -> Iterator[DecisionFact]:
    for row in decisions:
        yield DecisionFact(
            **_dimensions(row),
            decision_id=row["pk"],
            approver_id=row["approver_id"],
            stage_key=row["stage_key"],
            verdict=row["verdict"],
            decided_at=row["created_at"],
            # Never negative: a decision recorded in the same instant the stage opened waited 0.
            wait_seconds=max(0, _seconds(row["created_at"] - row["activated_at"])),
        )


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _batches(ids: list[int], size: int) -> Iterator[list[int]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch
