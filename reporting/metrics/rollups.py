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

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
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


def delay_bucket(seconds: int) -> str:
    """The bucket a wait of `seconds` falls in."""
    for bound, bucket in DELAY_BOUNDS:
        if seconds < bound:
            return bucket
    return DelayBucket.LONGER


def _releases(release_ids: list[int]) -> Iterable[Release]:
    deployments = Deployment.objects.filter(release=OuterRef("pk"))
    return (
        Release.objects.filter(pk__in=release_ids)
        .exclude(approval__status=Status.PENDING)
        .select_related("service", "change", "approval")
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
    )


def _dimensions(release: Release) -> dict:
    return {
        "release_id": release.pk,
        "service_id": release.service_id,
        "team_id": release.service.team_id,
        "environment_id": release.environment_id,
        "change_type": release.change.type,
    }


def _release_facts(releases: Iterable[Release]) -> Iterator[ReleaseFact]:
    for release in releases:
        approval = release.approval
        seconds = None
        if approval.status == Status.APPROVED:
            seconds = _seconds(approval.decided_at - approval.requested_at)
        yield ReleaseFact(
            **_dimensions(release),
            requested_at=approval.requested_at,
            decided_at=approval.decided_at,
            outcome=approval.status,
            abandonment=_abandonment(approval.status, release.superseded),
            approve_seconds=seconds,
            delay_bucket=delay_bucket(seconds) if seconds is not None else "",
            deployed=release.deployed,
            failed=release.failed,
            rolled_back=release.rolled_back,
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


def _finished_stages(release_ids: list[int]) -> Iterable[ApprovalStage]:
    return ApprovalStage.objects.filter(
        request__release__in=release_ids, activated_at__isnull=False, completed_at__isnull=False
    ).select_related("request__release__service", "request__release__change")


def _stage_facts(stages: Iterable[ApprovalStage]) -> Iterator[StageFact]:
    for stage in stages:
        yield StageFact(
            **_dimensions(stage.request.release),
            stage_id=stage.pk,
            key=stage.key,
            name=stage.name,
            outcome=stage.status,
            activated_at=stage.activated_at,
            completed_at=stage.completed_at,
            wait_seconds=_seconds(stage.completed_at - stage.activated_at),
            sla_seconds=_seconds(stage.due_at - stage.activated_at) if stage.due_at else None,
            breached=stage.due_at is not None and stage.completed_at > stage.due_at,
        )


def _standing_decisions(release_ids: list[int]) -> Iterable[Decision]:
    return Decision.objects.filter(
        request__release__in=release_ids, stage__activated_at__isnull=False
    ).select_related("stage", "request__release__service", "request__release__change")


def _decision_facts(decisions: Iterable[Decision]) -> Iterator[DecisionFact]:
    for decision in decisions:
        yield DecisionFact(
            **_dimensions(decision.request.release),
            decision_id=decision.pk,
            approver_id=decision.approver_id,
            stage_key=decision.stage.key,
            verdict=decision.verdict,
            decided_at=decision.created_at,
            # Never negative: a decision recorded in the same instant the stage opened waited 0.
            wait_seconds=max(0, _seconds(decision.created_at - decision.stage.activated_at)),
        )


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _batches(ids: list[int], size: int) -> Iterator[list[int]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch
