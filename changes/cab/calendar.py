"""CAB meetings on the change schedule and in its iCal feeds (registered by ChangesConfig)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import Prefetch
from django.urls import reverse

from changes.cab.models import CabMeeting
from changes.calendar.entries import CalendarEntry, Status
from governance.models import Service

MEETING_STATUS = {
    CabMeeting.Status.SCHEDULED: Status.CONFIRMED,
    CabMeeting.Status.IN_PROGRESS: Status.CONFIRMED,
    CabMeeting.Status.CLOSED: Status.CONFIRMED,
    CabMeeting.Status.CANCELLED: Status.CANCELLED,
}


def meeting_entry(meeting: CabMeeting) -> CalendarEntry:
    """One meeting as a calendar entry; a meeting naming no services concerns every one."""
    services = list(meeting.services.all())
    names = ", ".join(s.name for s in services) or "every service"
    items = len(meeting.items.all())
    return CalendarEntry(
        uid=f"cab-meeting-{meeting.pk}",
        kind="cab meeting",
        title=f"CAB: {meeting.title}",
        start=meeting.starts_at,
        end=meeting.ends_at,
        time_zone=meeting.time_zone,
        status=MEETING_STATUS[meeting.status],
        url=reverse("cab:meeting_detail", kwargs={"pk": meeting.pk}),
        description=(
            f"Change Advisory Board for {names}; quorum {meeting.quorum}, "
            f"{items} item{'s' if items != 1 else ''} on the agenda."
        ),
        service_ids=frozenset(s.pk for s in services),
        everywhere=not services,
        label=meeting.get_status_display().lower(),
    )


def meeting_source(
    *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
) -> list[CalendarEntry]:
    """Meetings overlapping [start, end) that concern these services (3 queries)."""
    meetings = (
        CabMeeting.objects.filter(starts_at__lt=end, ends_at__gt=start)
        .prefetch_related(
            Prefetch("services", queryset=Service.objects.only("id", "name")), "items"
        )
        .order_by("starts_at", "pk")
    )
    entries = [meeting_entry(meeting) for meeting in meetings]
    if service_ids is None:
        return entries
    return [entry for entry in entries if entry.concerns(service_ids)]
