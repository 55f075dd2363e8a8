"""Releases with a planned time on the change schedule (changes.calendar), registered as an
entry source by ApprovalsConfig.ready(): the calendar lives below this app and cannot read it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from django.urls import reverse

from approvals.models import ApprovalRequest, Release
from changes.calendar.conflicts import Conflict, window_conflicts
from changes.calendar.entries import CalendarEntry, Status

# A release is planned as a moment; it is drawn, and checked for conflicts, as an hour.
RELEASE_SLOT = timedelta(hours=1)

APPROVAL_STATUS = {
    ApprovalRequest.Status.PENDING: Status.TENTATIVE,
    ApprovalRequest.Status.APPROVED: Status.CONFIRMED,
    ApprovalRequest.Status.REJECTED: Status.CANCELLED,
    ApprovalRequest.Status.WITHDRAWN: Status.CANCELLED,
    ApprovalRequest.Status.EXPIRED: Status.CANCELLED,
}


def release_entry(release: Release) -> CalendarEntry:
    """One planned release as a calendar entry; a vendor-run service's is a vendor release."""
    approval = getattr(release, "approval", None)
    status = approval.status if approval else ApprovalRequest.Status.PENDING
    vendor = release.service.vendor
    kind = "vendor release" if vendor else "release"
    by_vendor = f" by {vendor.name}" if vendor else ""
    return CalendarEntry(
        uid=f"release-{release.pk}",
        kind=kind,
        title=f"{release.service.name} {release.version} → {release.environment.name}",
        start=release.planned_at,
        end=release.planned_at + RELEASE_SLOT,
        time_zone="UTC",
        status=APPROVAL_STATUS[status],
        url=reverse("approvals:release_detail", kwargs={"pk": release.pk}),
        description=(
            f"Release{by_vendor} of {release.service.name} {release.version} to "
            f"{release.environment.name}, change {release.change.ref}; approval {status}."
        ),
        service_ids=frozenset({release.service_id}),
        change_id=release.change_id,
        label=f"approval {status}",
    )


def release_source(
    *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
) -> list[CalendarEntry]:
    """Releases planned in [start - slot, end), with what the entry shows (one query)."""
    releases = Release.objects.filter(
        planned_at__isnull=False, planned_at__lt=end, planned_at__gt=start - RELEASE_SLOT
    ).select_related("service__vendor", "environment", "change", "approval")
    if service_ids is not None:
        releases = releases.filter(service_id__in=service_ids)
    return [release_entry(release) for release in releases.order_by("planned_at", "pk")]


def release_conflicts(release: Release) -> list[Conflict]:
    """What a planned release runs into (for its page): other changes on its service or a
    directly dependent one, freezes, approvers away. Its own change is left out; a release
    with no planned time, or no longer pending or approved, has none."""
    if release.planned_at is None:
        return []
    approval = getattr(release, "approval", None)
    if approval is not None and APPROVAL_STATUS[approval.status] == Status.CANCELLED:
        return []
    end = release.planned_at + RELEASE_SLOT
    return window_conflicts([release.service], release.planned_at, end, release.change)
