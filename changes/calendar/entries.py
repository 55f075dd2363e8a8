"""What the change schedule shows, and where it comes from.

An entry is one thing on the calendar: a change's planned window, a freeze (one occurrence on
the page; the whole rule in a feed), a planned release. Entries come from *sources*: this app's
own (changes, freezes; changes.calendar.schedule) and those apps above it register here from
their AppConfig.ready() (approvals adds releases with a planned time): changes may not import
them, so they come to it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class Status:
    """An entry's RFC 5545 STATUS."""

    TENTATIVE = "TENTATIVE"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class CalendarEntry:
    """One thing on the schedule, in instants (UTC-aware) written in `time_zone`.

    `service_ids` is the entry's scope; `everywhere` marks a freeze that covers every service.
    A recurring freeze carries its rule (`recurrence`, `exdates` as local wall times) for feeds;
    on the page each occurrence is an entry of its own.
    """

    uid: str
    kind: str  # "change", "freeze", "release", "vendor release"
    title: str
    start: datetime
    end: datetime
    time_zone: str
    status: str
    url: str = ""
    description: str = ""
    service_ids: frozenset[int] = frozenset()
    everywhere: bool = False
    change_id: int | None = None
    recurrence: str = ""
    exdates: tuple[datetime, ...] = ()
    label: str = ""  # a short tag: the change's state, the freeze's kind, the approval status
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def concerns(self, service_ids: Collection[int]) -> bool:
        """Whether the entry touches any of these services."""
        return self.everywhere or not self.service_ids.isdisjoint(service_ids)


class EntrySource(Protocol):
    """Entries overlapping [start, end) for these services (None: every service).

    `expand` asks for one entry per occurrence of a recurring freeze (the page), otherwise one
    entry per rule (a feed)."""

    def __call__(
        self, *, service_ids: Collection[int] | None, start: datetime, end: datetime, expand: bool
    ) -> Iterable[CalendarEntry]: ...


_sources: dict[str, EntrySource] = {}


def register_source(name: str, source: EntrySource) -> None:
    """Add (or replace, by name) a source of entries; apps call this from AppConfig.ready()."""
    _sources[name] = source


def registered_sources() -> dict[str, EntrySource]:
    return dict(_sources)
