"""Putting things on the CAB's agenda, and the meetings' life cycle."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from changes.cab.models import AgendaItem, CabMeeting
from changes.records.models import ChangeRecord
from changes.reviews.models import Review
from governance.ledger import services as ledger
from governance.models import Service, User


def next_meeting(service: Service | None, now: datetime) -> CabMeeting | None:
    """The next meeting not yet started that covers `service` (a meeting naming no services
    covers them all)."""
    meetings = CabMeeting.objects.filter(status=CabMeeting.Status.SCHEDULED, starts_at__gt=now)
    if service is not None:
        meetings = meetings.filter(Q(services__isnull=True) | Q(services=service))
    return meetings.order_by("starts_at", "pk").first()


def add_agenda_item(
    *,
    meeting: CabMeeting,
    key: str,
    kind: str,
    title: str,
    detail: str = "",
    change: ChangeRecord | None = None,
    release_id: int | None = None,
    review: Review | None = None,
    actor: User | None = None,
) -> tuple[AgendaItem, bool]:
    """Put an item on `meeting`'s agenda unless one about the same subject (`key`) is there.

    Returns the item and whether it was added now. Safe to call twice, and from two workers at
    once: the unique (meeting, key) constraint decides, inside a savepoint.
    """
    existing = AgendaItem.objects.filter(meeting=meeting, key=key).first()
    if existing is not None:
        return existing, False
    position = meeting.items.count() + 1
    try:
        with transaction.atomic():
            item = AgendaItem.objects.create(
                meeting=meeting,
                key=key,
                kind=kind,
                position=position,
                title=title[:250],
                detail=detail,
                change=change,
                release_id=release_id,
                review=review,
                added_by=actor,
            )
            ledger.append(
                kind="cab.agenda_item_added",
                subject=f"cab_meeting:{meeting.pk}",
                actor=actor.username if actor else "system",
                payload={"key": key, "kind": kind, "title": item.title},
            )
    except IntegrityError:
        return AgendaItem.objects.get(meeting=meeting, key=key), False
    return item, True
