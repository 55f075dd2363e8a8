"""Sign-in lockouts as django-axes counts them: who is locked now, until when, and the ledger hook.

django-axes keeps one AccessAttempt row per (username, address, user agent) with the number of
failures and the time of the latest one. A username, or an address, is locked while the failures
of its rows still inside the cool-off add up to AXES_FAILURE_LIMIT. Unlocking is a service
(`governance.identity.lockouts.unlock_account`), so it is ledgered.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessAttempt
from axes.utils import reset as reset_sign_in_failures
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from governance.authority.services import require_administrator
from governance.exceptions import GovernanceError, PermissionDenied
from governance.ledger import services as ledger
from governance.people.models import User

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
    record_lockout(username=username, ip=ip_address, failures=failures)


def record_lockout(*, username: str | None, ip: str | None, failures: int) -> None:
    """Ledger a sign-in lockout that django-axes has just imposed (see governance.lockouts)."""
    with transaction.atomic():
        ledger.append(
            kind="auth.locked_out",
            subject=_sign_in_subject(username, ip),
            actor="system",
            payload={"username": username, "ip": ip, "failures": failures},
        )


def unlock_account(
    *, username: str | None = None, ip: str | None = None, actor: User | None, reason: str
) -> int:
    """Clear the failed sign-ins of a username and/or an address, lifting their lockout.

    Returns how many failures were cleared. Only administrators unlock, always with a reason.
    """
    require_administrator(actor, "unlock sign-in")
    username, ip = (username or "").strip() or None, (ip or "").strip() or None
    if not reason.strip():
        raise PermissionDenied("A reason is required to unlock.", fields={"reason": ["Required."]})
    if not username and not ip:
        raise GovernanceError("Name the username or the address to unlock.")
    if ip and not _is_ip(ip):
        raise GovernanceError(f"{ip} is not an IP address.", fields={"ip": ["Not an address."]})
    with transaction.atomic():
        matching = Q(username=username) if username else Q()
        matching |= Q(ip_address=ip) if ip else Q()
        attempts = AccessAttempt.objects.select_for_update().filter(matching)
        failures = sum(attempt.failures_since_start for attempt in attempts)
        if not failures:
            raise GovernanceError("Nothing to unlock: no failed sign-ins are recorded for that.")
        # Either one (not both together): each is a lockout of its own.
        reset_sign_in_failures(ip=ip, username=username, ip_or_username=bool(ip and username))
        ledger.append(
            kind="auth.unlocked",
            subject=_sign_in_subject(username, ip),
            actor=actor.username if actor else "system",
            payload={"username": username, "ip": ip, "reason": reason, "failures": failures},
        )
    return failures


def _sign_in_subject(username: str | None, ip: str | None) -> str:
    user = User.objects.filter(username=username).first() if username else None
    if user is not None:
        return f"user:{user.pk}"
    return f"username:{username}" if username else f"address:{ip}"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
