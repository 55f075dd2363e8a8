"""Sign-in lockouts as django-axes counts them: who is locked now, until when, and the ledger hook.

django-axes keeps one AccessAttempt row per (username, address, user agent) with the number of
failures and the time of the latest one. A username, or an address, is locked while the failures
of its rows still inside the cool-off add up to AXES_FAILURE_LIMIT. Unlocking is a service
(`governance.services.unlock_account`), so it is ledgered.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from governance import services

# Lockout kind -> the AccessAttempt field it counts by, and the field shown beside it.
_COUNTED_BY = {"username": ("username", "ip_address"), "address": ("ip_address", "username")}


@dataclass(frozen=True)
class Lockout:
    """One locked username or address."""

    kind: str  # "username" or "address"
    value: str
    failures: int
    since: datetime  # the failure that reached the limit (later ones are refused, not counted)
    until: datetime | None  # None: until an administrator unlocks it (no cool-off configured)
    related: list[str]  # the addresses a username was tried from, or the usernames an address tried


def _counted() -> QuerySet[AccessAttempt]:
    """Attempts that still count: those inside the cool-off, or all of them without one."""
    attempts = AccessAttempt.objects.all()
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)
    return attempts


def current_lockouts() -> list[Lockout]:
    """Every username and address locked now: usernames first, each kind by value.

    Two queries per kind whatever the number of lockouts: the locked values, then their rows.
    """
    lockouts = []
    for kind, (field, _) in _COUNTED_BY.items():
        locked = (
            _counted()
            .exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(total=Sum("failures_since_start"))
            .filter(total__gte=settings.AXES_FAILURE_LIMIT)
            .values_list(field, flat=True)
        )
        rows_by_value = defaultdict(list)
        for row in _counted().filter(**{f"{field}__in": locked}):
            rows_by_value[getattr(row, field)].append(row)
        lockouts += [_lockout(kind, value, rows_by_value[value]) for value in sorted(rows_by_value)]
    return lockouts


def lockout_of(*, username: str | None, ip: str | None) -> Lockout | None:
    """The lockout that holds a sign-in by `username` from `ip` longest, if either is locked."""
    found = []
    for kind, value in (("username", username), ("address", ip)):
        field = _COUNTED_BY[kind][0]
        rows = list(_counted().filter(**{field: value})) if value else []
        if sum(row.failures_since_start for row in rows) >= settings.AXES_FAILURE_LIMIT:
            found.append(_lockout(kind, value, rows))
    if not found:
        return None
    # A lockout without an end outlasts any other.
    return max(found, key=lambda lock: (lock.until is None, lock.until or lock.since))


def _lockout(kind: str, value: str, rows: list[AccessAttempt]) -> Lockout:
    other = _COUNTED_BY[kind][1]
    newest_first = sorted(rows, key=lambda row: row.attempt_time, reverse=True)
    # Rows leave the count oldest first, each one cool-off after its latest failure; the lock
    # lifts when the row that completes the limit, counting from the newest, leaves.
    total, completing = 0, newest_first[-1]
    for row in newest_first:
        total += row.failures_since_start
        if total >= settings.AXES_FAILURE_LIMIT:
            completing = row
            break
    cool_off = settings.AXES_COOLOFF_TIME
    return Lockout(
        kind=kind,
        value=value,
        failures=sum(row.failures_since_start for row in rows),
        since=newest_first[0].attempt_time,
        until=completing.attempt_time + cool_off if cool_off is not None else None,
        related=sorted({str(getattr(row, other)) for row in rows if getattr(row, other)}),
    )


def on_user_locked_out(sender, request: HttpRequest, username, ip_address, **kwargs) -> None:
    """django-axes' `user_locked_out` signal: ledger a lockout when it begins.

    axes sends the signal again for every attempt it refuses during the lockout; such an attempt
    is not counted, so it carries no failure count, and it is not ledgered again.
    """
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        return
    services.record_lockout(username=username, ip=ip_address, failures=failures)
