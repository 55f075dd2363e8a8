"""The audit trail: ledger events and configuration changes, newest first, as one list.

Each source is read on the database by keyset (never OFFSET), page size plus one row at a time,
through the indexes built for it: the ledger's (kind, seq), (actor, seq), (payload->>'service',
seq) and (payload->>'environment', seq); auditlog's timestamp. The two short lists are merged by
time and cut to a page; the cursor keeps the position reached in each source (see `cursor`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import IntegerField, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KT

from governance.models import Delegation, Environment, LedgerEntry, RoleAssignment, Service
from reporting.audit.cursor import Cursor
from reporting.audit.forms import CONFIGURATION

OLDER, NEWER = "older", "newer"
LEDGER_FIELDS = ("seq", "recorded_at", "kind", "subject", "actor", "payload", "entry_hash")


@dataclass(frozen=True)
class Filters:
    """What the auditor asked for; None or "" means no filter."""

    service: Service | None = None
    environment: Environment | None = None
    person: str = ""
    start: date | None = None
    end: date | None = None
    kind: str = ""


@dataclass
class Page:
    """One page of merged rows, newest first, and the cursors of its neighbours."""

    ledger: list[dict]
    logs: list[LogEntry]
    rows: list  # the ledger dicts and LogEntry objects in display order
    older: Cursor | None
    newer: Cursor | None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _payload_names(entries: QuerySet, key: str, slug: str) -> QuerySet:
    """Entries whose payload[key] is `slug`. On PostgreSQL a ->> expression written as the
    index is, so the planner uses it; elsewhere (SQLite, `make run`) the portable JSON lookup,
    since Django compares a text key with a JSON literal there."""
    if connection.vendor == "postgresql":
        return entries.alias(**{f"named_{key}": KT(f"payload__{key}")}).filter(
            **{f"named_{key}": slug}
        )
    return entries.filter(**{f"payload__{key}": slug})


def ledger_rows(filters: Filters) -> QuerySet:
    """The ledger entries matching `filters`; ordering and the cursor are applied later."""
    if filters.kind == CONFIGURATION:
        return LedgerEntry.objects.none()
    entries = LedgerEntry.objects.all()
    if filters.service:
        entries = _payload_names(entries, "service", filters.service.slug)
    if filters.environment:
        entries = _payload_names(entries, "environment", filters.environment.slug)
    if filters.person:
        entries = entries.filter(actor=filters.person)
    if filters.kind:
        entries = entries.filter(kind=filters.kind)
    return _ledger_period(entries, filters)


def _ledger_period(entries: QuerySet, filters: Filters) -> QuerySet:
    """The period as a seq range too: entries are written in time order, so the first entry
    from the start and the last before the end bound the seqs, and the index on the other
    filter (service, kind...) is read over that range only, not from the head down."""
    if filters.start:
        since = _midnight(filters.start)
        first = LedgerEntry.objects.filter(recorded_at__gte=since).order_by("recorded_at", "seq")
        entries = entries.filter(recorded_at__gte=since, seq__gte=Subquery(first.values("seq")[:1]))
    if filters.end:
        until = _midnight(filters.end + timedelta(days=1))
        last = LedgerEntry.objects.filter(recorded_at__lt=until).order_by("-recorded_at", "-seq")
        entries = entries.filter(recorded_at__lt=until, seq__lte=Subquery(last.values("seq")[:1]))
    return entries


def log_rows(filters: Filters) -> QuerySet:
    """django-auditlog's entries matching `filters`.

    A service is matched on the service itself and on role assignments and delegations naming
    it (deleted ones too); an environment on itself and on role assignments naming it. Other
    models are not matched by service or environment.
    """
    if filters.kind and filters.kind != CONFIGURATION:
        return LogEntry.objects.none()
    logs = LogEntry.objects.select_related("actor", "content_type")
    if filters.service:
        logs = logs.filter(
            _history_of(Service, filters.service.pk, "service", (RoleAssignment, Delegation))
        )
    if filters.environment:
        logs = logs.filter(
            _history_of(Environment, filters.environment.pk, "environment", (RoleAssignment,))
        )
    if filters.person:
        logs = logs.filter(actor__username=filters.person)
    if filters.start:
        logs = logs.filter(timestamp__gte=_midnight(filters.start))
    if filters.end:
        logs = logs.filter(timestamp__lt=_midnight(filters.end + timedelta(days=1)))
    return logs


def _history_of(model, pk: int, field: str, naming: tuple) -> Q:
    """Entries about the `model` row `pk` and about rows of the `naming` models whose `field`
    is that row, as (content type, object id) pairs: the planner reads auditlog's object_id
    index for each, never the JSON of every entry."""
    kinds = ContentType.objects.get_for_models(model, *naming)  # cached after the first page
    matches = Q(content_type_id=kinds[model].pk, object_id=pk)
    pairs = _naming_rows(naming, field, pk, kinds)
    for related in naming:
        ids = [object_id for kind, object_id in pairs if kind == kinds[related].pk]
        matches |= Q(content_type_id=kinds[related].pk, object_id__in=ids)
    return matches


def _naming_rows(naming: tuple, field: str, pk: int, kinds: dict) -> list[tuple[int, int]]:
    """(content type id, object id) of every row of the `naming` models whose `field` is `pk`:
    those there now, and deleted ones found through their deletion entry (auditlog keeps the
    foreign key's id as text), in one query. Deletions are few; the action index finds them."""
    parts = []
    for related in naming:
        kind = Value(kinds[related].pk, output_field=IntegerField())
        parts.append(
            related.objects.filter(**{field: pk})
            .order_by()
            .annotate(kind=kind)
            .values_list("kind", "pk")
        )
        parts.append(
            LogEntry.objects.filter(
                content_type_id=kinds[related].pk,
                action=LogEntry.Action.DELETE,
                # The old value, first of [old, new]: an index lookup every database runs.
                **{f"changes__{field}__0": str(pk)},
            )
            .order_by()
            .values_list("content_type_id", "object_id")
        )
    return list(parts[0].union(*parts[1:], all=True))


def read_page(filters: Filters, cursor: Cursor, direction: str, size: int) -> Page:
    """`size` rows past `cursor` in `direction`, merged newest first, with the neighbours'
    cursors (None where there is nothing more that way)."""
    ledger, logs = ledger_rows(filters), log_rows(filters)
    older = direction == OLDER
    if older:
        if cursor.seq is not None:
            ledger = ledger.filter(seq__lt=cursor.seq)
        if cursor.logged is not None:
            logs = logs.filter(_log_before(cursor.logged))
        ledger, logs = ledger.order_by("-seq"), logs.order_by("-timestamp", "-id")
    else:
        # Going newer from the top of a source, there is nothing above it.
        ledger = ledger.filter(seq__gte=cursor.seq) if cursor.seq is not None else ledger.none()
        logs = logs.filter(_log_from(cursor.logged)) if cursor.logged else logs.none()
        ledger, logs = ledger.order_by("seq"), logs.order_by("timestamp", "id")
    fetched_ledger = list(ledger.values(*LEDGER_FIELDS)[: size + 1])
    fetched_logs = list(logs[: size + 1])
    merged = heapq.merge(
        ((_ledger_key(row), row) for row in fetched_ledger),
        ((_log_key(log), log) for log in fetched_logs),
        key=lambda pair: pair[0],
        reverse=older,
    )
    shown = [row for _, row in merged][:size]
    more = len(fetched_ledger) + len(fetched_logs) > len(shown)
    if not older:
        shown.reverse()
    return _page(shown, cursor, older, more)


def _log_before(logged: tuple[datetime, int]) -> Q:
    at, pk = logged
    return Q(timestamp__lt=at) | Q(timestamp=at, id__lt=pk)


def _log_from(logged: tuple[datetime, int]) -> Q:
    at, pk = logged
    return Q(timestamp__gt=at) | Q(timestamp=at, id__gte=pk)


def _ledger_key(row: dict) -> tuple:
    # Same time: the ledger entry sorts above the configuration change, then by its own order.
    return (row["recorded_at"], 1, row["seq"])


def _log_key(log: LogEntry) -> tuple:
    return (log.timestamp, 0, log.pk)


def _page(shown: list, cursor: Cursor, older: bool, more: bool) -> Page:
    """The page's rows and where the pages on either side start.

    Shown rows of a source span [lowest, highest] in it; a source with no row shown keeps
    the cut it was read from, so the rows beyond that cut stay on the neighbouring page.
    """
    ledger = [row for row in shown if isinstance(row, dict)]
    logs = [row for row in shown if isinstance(row, LogEntry)]
    bottom = Cursor(
        seq=ledger[-1]["seq"] if ledger else cursor.seq,
        logged=(logs[-1].timestamp, logs[-1].pk) if logs else cursor.logged,
    )
    # The newer side starts just above the newest row shown: seq + 1, (timestamp, id + 1).
    top = Cursor(
        seq=ledger[0]["seq"] + 1 if ledger else cursor.seq,
        logged=(logs[0].timestamp, logs[0].pk + 1) if logs else cursor.logged,
    )
    if older:
        at_top = cursor == Cursor()
        return Page(
            ledger, logs, shown, older=bottom if more else None, newer=None if at_top else top
        )
    return Page(ledger, logs, shown, older=bottom, newer=top if more else None)
