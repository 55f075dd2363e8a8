"""Freeze actions: create, edit, end early, override; and what a freeze means for a release.

Every write is one transaction with its ledger entry inside. The gate (`freeze_blockers`) and
planning (`add_freeze_stage`) hand over a release's ids and values, so the approvals app above
can ask without this app knowing its models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, available_timezones

from dateutil.rrule import DAILY, rrulestr
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from changes.freezes.exceptions import FreezeConflict, FreezeForbidden, InvalidFreeze
from changes.freezes.models import Freeze, FreezeOverride
from changes.records.models import ChangeRecord
from changes.wall_time import WALL_FORMAT, wall_exists, wall_to_instant
from governance.authority.selectors import administrators
from governance.authority.services import is_administrator
from governance.ledger import services as ledger
from governance.models import Environment, Service, Team, User
from governance.notifications.services import notify
from governance.policy.engine import Plan, StageRequirement

# A bounded rule longer than this is refused: its last occurrence is computed when saved.
MAX_OCCURRENCES = 5000
MAX_DURATION = timedelta(days=366)
MAX_OVERRIDE_HOURS = 72
EMERGENCY = ChangeRecord.Type.EMERGENCY
# Parts that would make several occurrences a day or move the start away from the given time.
_REFUSED_RULE_PARTS = ("DTSTART", "BYHOUR", "BYMINUTE", "BYSECOND", "\n", "\r")


@dataclass
class FreezeInput:
    """A freeze as the page's form or the command give it: wall times in `time_zone`."""

    name: str
    kind: str
    time_zone: str
    local_start: datetime
    local_end: datetime
    environments: list[Environment]
    reason: str
    services: list[Service] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    recurrence: str = ""
    exdates: list[datetime] = field(default_factory=list)


class ChangeLike(Protocol):
    type: str


class ReleaseLike(Protocol):
    """What the gate hands over about a release (approvals' Release, read for the gate)."""

    pk: int
    service_id: int
    environment_id: int
    change: ChangeLike


def create_freeze(*, data: FreezeInput, actor: User) -> Freeze:
    """Create a freeze as administrator `actor`; the ledger records it with its scope."""
    _require_administrator(actor)
    values = _validated(data)
    with transaction.atomic():
        freeze = Freeze.objects.create(created_by=actor, **values)
        _set_scope(freeze, data)
        ledger.append(
            kind="freeze.created",
            subject=f"freeze:{freeze.pk}",
            actor=actor.username,
            payload=_payload(freeze, data),
        )
    return freeze


def update_freeze(*, freeze: Freeze, data: FreezeInput, actor: User) -> Freeze:
    """Edit a freeze that has not ended; the ledger keeps the new version and the reason."""
    _require_administrator(actor)
    values = _validated(data)
    with transaction.atomic():
        locked = Freeze.objects.select_for_update().get(pk=freeze.pk)
        if locked.ended_at is not None:
            raise FreezeConflict(f"Freeze '{locked.name}' was ended; it can no longer be edited.")
        # save(), not update(): the configuration history (django-auditlog) records saves.
        for name, value in values.items():
            setattr(locked, name, value)
        locked.save(update_fields=list(values))
        _set_scope(locked, data)
        ledger.append(
            kind="freeze.updated",
            subject=f"freeze:{locked.pk}",
            actor=actor.username,
            payload=_payload(locked, data),
        )
    return locked


def end_freeze(*, freeze: Freeze, actor: User, reason: str, now: datetime | None = None) -> Freeze:
    """End a freeze early (now): it stops holding releases at once, and never comes back."""
    _require_administrator(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidFreeze(
            "A reason is required to end a freeze.", fields={"reason": ["Required."]}
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = Freeze.objects.select_for_update().get(pk=freeze.pk)
        if locked.ended_at is not None:
            raise FreezeConflict(f"Freeze '{locked.name}' was already ended.")
        locked.ended_at, locked.ended_by, locked.end_reason = now, actor, reason
        locked.save(update_fields=["ended_at", "ended_by", "end_reason"])
        ledger.append(
            kind="freeze.ended",
            subject=f"freeze:{locked.pk}",
            actor=actor.username,
            payload={"name": locked.name, "ended_at": now.isoformat(), "reason": reason},
        )
    return locked


def request_override(
    *,
    freeze: Freeze,
    release: ReleaseLike,
    actor: User,
    reason: str,
    hours: int,
    now: datetime | None = None,
) -> FreezeOverride:
    """Ask to let one release through a hard `freeze` covering it, for `hours`; another
    administrator confirms."""
    _require_administrator(actor)
    covers = Freeze.objects.filter(pk=freeze.pk, kind=Freeze.Kind.HARD, ended_at__isnull=True)
    if not covers.covering(release.service_id, release.environment_id).exists():
        raise InvalidFreeze(
            f"Freeze '{freeze.name}' does not hold this release back: only a hard freeze in "
            "force whose scope covers the release's service and environment can be overridden.",
            fields={"freeze": ["Not a hard freeze covering this release."]},
        )
    reason = (reason or "").strip()
    if not reason:
        raise InvalidFreeze(
            "A written reason is required for an override.", fields={"reason": ["Required."]}
        )
    if not isinstance(hours, int) or not 1 <= hours <= MAX_OVERRIDE_HOURS:
        raise InvalidFreeze(
            f"An override lasts between 1 and {MAX_OVERRIDE_HOURS} hours.",
            fields={"hours": [f"Between 1 and {MAX_OVERRIDE_HOURS}."]},
        )
    now = now or timezone.now()
    with transaction.atomic():
        override = FreezeOverride.objects.create(
            freeze=freeze,
            release_id=release.pk,
            release_label=str(release)[:300],
            reason=reason,
            requested_by=actor,
            requested_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        ledger.append(
            kind="freeze.override_requested",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload=_override_payload(override),
        )
        # Whatever the hour: the release is held until a second administrator confirms.
        notify(
            people=administrators().exclude(pk=actor.pk),
            subject=f"Override waiting for you: {override.release_label}",
            body=f"{actor.username} asks to let {override.release_label} through the hard "
            f"freeze '{freeze.name}' for {hours} h: {reason} A second administrator must "
            "confirm it before it takes effect.",
            url=reverse("changes:freeze_list"),
            reason="you are an administrator",
        )
    return override


def confirm_override(
    *, override: FreezeOverride, actor: User, now: datetime | None = None
) -> FreezeOverride:
    """Confirm an override as the second administrator (never the one who asked)."""
    _require_administrator(actor)
    now = now or timezone.now()
    with transaction.atomic():
        locked = FreezeOverride.objects.select_for_update().get(pk=override.pk)
        if locked.requested_by_id == actor.pk:
            raise FreezeForbidden(
                "A second administrator must confirm an override; you asked for this one."
            )
        if locked.confirmed_at is not None:
            raise FreezeConflict("This override was already confirmed.")
        if locked.expires_at <= now:
            raise FreezeConflict("This override expired before it was confirmed; ask again.")
        FreezeOverride.objects.filter(pk=locked.pk).update(confirmed_by=actor, confirmed_at=now)
        locked.confirmed_by, locked.confirmed_at = actor, now
        ledger.append(
            kind="freeze.override_confirmed",
            subject=f"release:{locked.release_id}",
            actor=actor.username,
            payload=_override_payload(locked),
        )
    return locked


def freeze_blockers(release: ReleaseLike, now: datetime, *, excepted: bool = False) -> list[str]:
    """Why hard freezes hold `release` back at `now` (empty when none does). One query.

    `excepted`: the release's change holds an emergency exception in force now (the approvals
    app knows); it passes, as does a release with a confirmed override in force. An emergency
    change outside its exception is held like any other.
    """
    if excepted:
        return []
    reasons = []
    for freeze in Freeze.objects.holding_for_gate(
        release.pk, release.service_id, release.environment_id, now
    ):
        occurrence = freeze.occurrence_at(now)
        if occurrence is None or freeze.overridden:
            continue
        until = freeze.moment_label(occurrence[1])
        reasons.append(
            f"Hard freeze '{freeze.name}' holds releases until {until}; only an emergency "
            "change inside its exception or an override confirmed by two administrators pass."
        )
    return reasons


def add_freeze_stage(
    plan: Plan, service: Service, environment: Environment, change_type: str, now: datetime
) -> Plan:
    """`plan` with one more stage while a soft freeze covers the service and environment at
    `now`: one approval by a release manager of the service. Emergencies get no extra stage
    (inside their exception they pass even a hard freeze; outside it the gate blocks them), and
    a plan in error stays as it is."""
    if plan.errors or change_type == EMERGENCY:
        return plan
    names = soft_freezes_in_force(service, environment, now)
    if not names:
        return plan
    plan.stages = sorted([*plan.stages, freeze_stage_requirement()], key=lambda s: (s.order, s.key))
    plan.matched_rules.append(
        {
            "id": "soft-freeze",
            "description": f"Soft freeze in force ({', '.join(names)}): a release manager of "
            "the service approves too.",
            "when": "a soft freeze covers the service and environment when the plan is made",
        }
    )
    return plan


def soft_freezes_in_force(service: Service, environment: Environment, now: datetime) -> list[str]:
    """Names of the soft freezes with an occurrence covering the service and environment."""
    freezes = Freeze.objects.in_force(now).covering(service.pk, environment.pk)
    return [
        f.name for f in freezes.filter(kind=Freeze.Kind.SOFT) if f.occurrence_at(now) is not None
    ]


def freeze_stage_requirement() -> StageRequirement:
    """The soft-freeze stage; a new object each time, since plans are changed in place."""
    return StageRequirement(
        key="freeze",
        name="Freeze approval (release manager)",
        approvers="release_managers",
        count=1,
        order=15,
        step_up=False,
        sla_hours=None,
        rules=["soft-freeze"],
    )


def _require_administrator(actor: User) -> None:
    if not is_administrator(actor):
        raise FreezeForbidden("Only Signoff administrators manage freezes and overrides.")


def _validated(data: FreezeInput) -> dict:
    """The stored values of a freeze, or InvalidFreeze naming the field. Nothing is written."""
    errors: dict[str, list[str]] = {}
    if not (data.name or "").strip():
        errors["name"] = ["Required."]
    if data.kind not in Freeze.Kind.values:
        errors["kind"] = ["Choose hard or soft."]
    if not (data.reason or "").strip():
        errors["reason"] = ["Required."]
    if not data.environments:
        errors["environments"] = ["Choose at least one environment."]
    if data.time_zone not in available_timezones():
        raise InvalidFreeze(
            "Unknown time zone; use an IANA name such as Europe/Berlin.",
            fields={"time_zone": ["Unknown time zone."], **errors},
        )
    zone = ZoneInfo(data.time_zone)
    _check_walls(data, zone, errors)
    if errors:
        raise InvalidFreeze(_first(errors), fields=errors)
    last_ends_at = wall_to_instant(data.local_end, zone)
    recurrence = _normalised_rule(data.recurrence)
    exdates = sorted({d.strftime(WALL_FORMAT) for d in data.exdates})
    if recurrence:
        last_ends_at = _last_end(recurrence, exdates, data, zone)
    return {
        "name": data.name.strip(),
        "kind": data.kind,
        "time_zone": data.time_zone,
        "starts_at": wall_to_instant(data.local_start, zone),
        "ends_at": wall_to_instant(data.local_end, zone),
        "recurrence": recurrence,
        "exdates": exdates,
        "last_ends_at": last_ends_at,
        "reason": data.reason.strip(),
    }


def _check_walls(data: FreezeInput, zone: ZoneInfo, errors: dict[str, list[str]]) -> None:
    for name, wall in (("start", data.local_start), ("end", data.local_end)):
        if not wall_exists(wall, zone):
            errors[name] = [
                f"{wall:%Y-%m-%d %H:%M} does not exist in {data.time_zone} "
                "(the clocks skip it); choose another time."
            ]
    if data.local_end <= data.local_start:
        errors["end"] = ["The end must be after the start."]
    elif data.local_end - data.local_start > MAX_DURATION:
        errors["end"] = ["A freeze (or each occurrence) lasts at most 366 days."]
    if data.exdates and not data.recurrence:
        errors["exdates"] = ["Skipped dates need a recurrence rule."]


def _normalised_rule(text: str) -> str:
    rule = (text or "").strip().removeprefix("RRULE:")
    if not rule:
        return ""
    upper = rule.upper()
    if any(part in upper for part in _REFUSED_RULE_PARTS):
        raise InvalidFreeze(
            "The rule may not set DTSTART, BYHOUR, BYMINUTE or BYSECOND, or span lines: the "
            "start time is the freeze's start.",
            fields={"recurrence": ["Remove DTSTART/BYHOUR/BYMINUTE/BYSECOND."]},
        )
    if "UNTIL=" in upper and upper.split("UNTIL=")[1].split(";")[0].endswith("Z"):
        raise InvalidFreeze(
            "Write UNTIL as a local time in the freeze's time zone, without Z "
            "(e.g. UNTIL=20271231T235959).",
            fields={"recurrence": ["UNTIL without Z."]},
        )
    return upper


def _last_end(rule_text: str, exdates: list[str], data: FreezeInput, zone: ZoneInfo):
    try:
        rule = rrulestr(rule_text, dtstart=data.local_start)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidFreeze(
            f"The recurrence rule is not valid RFC 5545: {exc}.",
            fields={"recurrence": [str(exc) or "Not a valid RRULE."]},
        ) from None
    # dateutil keeps a parsed rule's FREQ, COUNT and UNTIL only in these private attributes.
    if rule._freq > DAILY:
        raise InvalidFreeze(
            "A freeze repeats at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY).",
            fields={"recurrence": ["FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY."]},
        )
    for wall in exdates:
        if datetime.strptime(wall, WALL_FORMAT) not in rule:
            raise InvalidFreeze(
                f"Skipped date {wall} is not an occurrence of the rule.",
                fields={"exdates": [f"{wall} is not an occurrence."]},
            )
    if rule._count is None and rule._until is None:
        return None
    starts = [s for s in rule.xafter(data.local_start, count=MAX_OCCURRENCES + 1, inc=True)]
    if len(starts) > MAX_OCCURRENCES:
        raise InvalidFreeze(
            f"A bounded rule may have at most {MAX_OCCURRENCES} occurrences; leave out "
            "COUNT and UNTIL for a freeze that repeats for good.",
            fields={"recurrence": ["Too many occurrences."]},
        )
    if not starts:
        raise InvalidFreeze(
            "The rule has no occurrence.", fields={"recurrence": ["No occurrence."]}
        )
    return wall_to_instant(starts[-1] + (data.local_end - data.local_start), zone)


def _first(errors: dict[str, list[str]]) -> str:
    name, messages = next(iter(errors.items()))
    return f"{name.replace('_', ' ').capitalize()}: {messages[0]}"


def _set_scope(freeze: Freeze, data: FreezeInput) -> None:
    freeze.environments.set(data.environments)
    freeze.services.set(data.services)
    freeze.teams.set(data.teams)


def _payload(freeze: Freeze, data: FreezeInput) -> dict:
    return {
        "name": freeze.name,
        "kind": freeze.kind,
        "time_zone": freeze.time_zone,
        "start": data.local_start.strftime(WALL_FORMAT),
        "end": data.local_end.strftime(WALL_FORMAT),
        "recurrence": freeze.recurrence,
        "exdates": freeze.exdates,
        "environments": sorted(e.slug for e in data.environments),
        "services": sorted(s.slug for s in data.services),
        "teams": sorted(t.slug for t in data.teams),
        "reason": freeze.reason,
    }


def _override_payload(override: FreezeOverride) -> dict:
    return {
        "freeze": override.freeze_id,
        "freeze_name": override.freeze.name,
        "release": override.release_id,
        "release_label": override.release_label,
        "reason": override.reason,
        "requested_by": override.requested_by.username,
        "expires_at": override.expires_at.isoformat(),
    }
