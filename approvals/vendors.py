"""Service levels of vendor releases: the notice the vendor gave, and our time to decide."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from approvals.models import ApprovalRequest, Release
from governance.models import Vendor


@dataclass(frozen=True)
class VendorSla:
    vendor: Vendor
    notice_given_hours: int | None
    notice_breached: bool
    decide_by: datetime
    turnaround_breached: bool

    @property
    def breached(self) -> bool:
        return self.notice_breached or self.turnaround_breached


def vendor_sla(release: Release, now: datetime) -> VendorSla | None:
    """The SLA picture of a release of a vendor-run service; None for our own services."""
    vendor = release.service.vendor
    if vendor is None:
        return None
    approval = release.approval
    requested = approval.requested_at
    given = None
    if release.planned_at:
        given = int((release.planned_at - requested).total_seconds() // 3600)
    decide_by = requested + timedelta(hours=vendor.approval_turnaround_hours)
    decided = approval.decided_at if approval.status != ApprovalRequest.Status.PENDING else None
    return VendorSla(
        vendor=vendor,
        notice_given_hours=given,
        notice_breached=given is not None and given < vendor.notice_period_hours,
        decide_by=decide_by,
        turnaround_breached=(decided or now) > decide_by,
    )
