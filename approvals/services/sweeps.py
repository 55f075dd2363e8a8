"""Timed work run by beat: expiring undecided requests, re-resolving approvers."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.gate import refresh_snapshot
from approvals.models import ApprovalRequest, ApprovalStage
from approvals.services.requests import stage_people
from approvals.services.transitions import transition

EXPIRE_BATCH = 500


def expire_requests(*, now=None) -> int:
    """Mark undecided requests past their deadline, and approvals past their validity, expired.

    Set-based and batched: claims rows with SKIP LOCKED so concurrent sweeps never collide.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            batch = list(
                ApprovalRequest.objects.select_for_update(skip_locked=True)
                .filter(_expired_filter(now))
                .only("pk", "status", "release_id")[:EXPIRE_BATCH]
            )
            for approval in batch:
                transition(approval, ApprovalRequest.Status.EXPIRED, None, now)
        total += len(batch)
        if len(batch) < EXPIRE_BATCH:
            return total


def _expired_filter(now) -> Q:
    return Q(status=ApprovalRequest.Status.PENDING, expires_at__lte=now) | Q(
        status=ApprovalRequest.Status.APPROVED, valid_until__lte=now
    )


def _people(release, approvers: str, team_rule: str, resolved: dict) -> set[int]:
    """Who may decide a stage of this source for the release's service and environment, read
    once per (service, environment, source, team rule) in a run."""
    key = (release.service_id, release.environment_id, approvers, team_rule)
    if key not in resolved:
        people = stage_people(release, approvers, team_rule, release.service.owning_teams())
        resolved[key] = set(people.values_list("pk", flat=True))
    return resolved[key]


def reresolve_open_stages() -> int:
    """Bring the approver lists of undecided stages in line with today's roles and people.

    Plans freeze who may approve when they are made; since then roles were granted or revoked,
    people deactivated or provisioned. Decisions always re-check authority live, so this only
    keeps what pages and the gate *show* true. Returns how many requests changed.
    """
    stages = (
        ApprovalStage.objects.filter(
            status__in=[ApprovalStage.Status.ACTIVE, ApprovalStage.Status.WAITING],
            request__status=ApprovalRequest.Status.PENDING,
        )
        .select_related(
            "request__release__change",
            "request__release__service",
            "request__release__environment",
        )
        .prefetch_related("eligible_approvers")
    )
    resolved: dict[tuple, set[int]] = {}
    changed: set[int] = set()
    for stage in stages.iterator(chunk_size=500):
        release = stage.request.release
        wanted = _people(release, stage.approvers, stage.team_rule, resolved)
        if stage.escalated_at is not None:
            # Escalated: the CAB's members stay eligible beside the stage's own approvers.
            wanted = wanted | _people(release, "cab", "", resolved)
        wanted = wanted - release.conflicted_user_ids()
        if wanted != {u.pk for u in stage.eligible_approvers.all()}:
            stage.eligible_approvers.set(wanted)
            changed.add(stage.request_id)
    for approval in ApprovalRequest.objects.filter(pk__in=changed):
        refresh_snapshot(approval)
    return len(changed)
