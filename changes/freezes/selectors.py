"""Reads about freezes for pages: the list, and what holds one release (for its page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from changes.freezes.models import Freeze, FreezeOverride


@dataclass
class FreezeRow:
    """One line of the freezes page: the freeze and what it is doing now."""

    freeze: Freeze
    state: str  # "in force", "upcoming", "ended", "over"
    occurrence: tuple[datetime, datetime] | None

    @property
    def window(self) -> str:
        return self.freeze.window_label(*self.occurrence) if self.occurrence else ""


def freeze_rows(freezes: QuerySet[Freeze], now: datetime) -> list[FreezeRow]:
    """The freezes with their state at `now` and the occurrence in force or next."""
    rows = []
    for freeze in freezes:
        occurrence = None if freeze.ended_at else freeze.next_occurrence(now)
        if freeze.ended_at:
            state = "ended"
        elif occurrence is None:
            state = "over"
        else:
            state = "in force" if occurrence[0] <= now else "upcoming"
        rows.append(FreezeRow(freeze, state, occurrence))
    return rows


def freezes_holding(service_id: int, environment_id: int, now: datetime) -> list[Freeze]:
    """Hard freezes with an occurrence covering this service and environment at `now`."""
    freezes = (
        Freeze.objects.in_force(now)
        .covering(service_id, environment_id)
        .filter(kind=Freeze.Kind.HARD)
    )
    return [freeze for freeze in freezes if freeze.occurrence_at(now) is not None]


def overrides_for_release(release_id: int) -> QuerySet[FreezeOverride]:
    """Every override asked for one release, newest first, with its people and freeze."""
    return FreezeOverride.objects.filter(release_id=release_id).select_related(
        "freeze", "requested_by", "confirmed_by"
    )


def pending_overrides(now: datetime) -> QuerySet[FreezeOverride]:
    """Overrides waiting for a second administrator, not yet expired."""
    return FreezeOverride.objects.filter(
        confirmed_at__isnull=True, expires_at__gt=now
    ).select_related("freeze", "requested_by")
