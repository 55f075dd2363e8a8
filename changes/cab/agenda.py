"""Putting many things on the CAB's next meetings at once (the sweeps' way in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count

from changes.cab.models import AgendaItem, CabMeeting
from changes.cab.services import next_meeting
from governance.ledger import services as ledger
from governance.models import Service


@dataclass(frozen=True)
class AgendaEntry:
    """Something for the CAB: what it is about (`key`), for which service, and its words."""

    key: str
    kind: str
    title: str
    service: Service
    detail: str = ""
    change_id: int | None = None
    release_id: int | None = None
    review_id: int | None = None


def put_on_next_meetings(entries: list[AgendaEntry], now: datetime) -> dict[str, CabMeeting]:
    """Add each entry to the next meeting covering its service, unless it is on it already.

    Returns the meeting each entry is on now (entries with no meeting scheduled are left out:
    they stay in the CAB queue until one is). Idempotent: the (meeting, key) constraint keeps a
    second run, or a concurrent one, from adding anything twice. Call inside a transaction.
    """
    meetings: dict[int, CabMeeting | None] = {}
    for entry in entries:
        if entry.service.pk not in meetings:
            meetings[entry.service.pk] = next_meeting(entry.service, now)
    placed = {e.key: meetings[e.service.pk] for e in entries if meetings[e.service.pk]}
    if not placed:
        return {}
    sizes = dict(
        CabMeeting.objects.filter(pk__in={m.pk for m in placed.values()})
        .annotate(size=Count("items"))
        .values_list("pk", "size")
    )
    existing = set(
        AgendaItem.objects.filter(
            meeting__in={m.pk for m in placed.values()}, key__in=list(placed)
        ).values_list("meeting_id", "key")
    )
    new = []
    for entry in entries:
        meeting = placed.get(entry.key)
        if meeting is None or (meeting.pk, entry.key) in existing:
            continue
        sizes[meeting.pk] += 1
        new.append(_item(entry, meeting, sizes[meeting.pk], now))
    created = AgendaItem.objects.bulk_create(new, ignore_conflicts=True)
    # One entry per meeting for the whole batch, naming every item added to it.
    by_meeting: dict[int, list[AgendaItem]] = {}
    for item in created:
        by_meeting.setdefault(item.meeting_id, []).append(item)
    for meeting_id, items in by_meeting.items():
        ledger.append(
            kind="cab.agenda_items_added",
            subject=f"cab_meeting:{meeting_id}",
            actor="system",
            payload={"items": [{"key": i.key, "kind": i.kind, "title": i.title} for i in items]},
        )
    return placed


def _item(entry: AgendaEntry, meeting: CabMeeting, position: int, now: datetime) -> AgendaItem:
    return AgendaItem(
        meeting=meeting,
        key=entry.key,
        kind=entry.kind,
        position=position,
        title=entry.title[:250],
        detail=entry.detail,
        change_id=entry.change_id,
        release_id=entry.release_id,
        review_id=entry.review_id,
        added_at=now,
    )
