"""Change-record actions: open, edit, move along the life cycle, follow linked releases.

Every write is one transaction with its ledger entry inside. The approvals app above hands
over what its releases say (`ReleaseProgress`); this app never reads its models.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import available_timezones

from django.db import IntegrityError, transaction
from django.utils import timezone

from changes.exceptions import InvalidIncident
from changes.incidents.models import Incident
from changes.records.exceptions import ChangeConflict, ChangeForbidden, InvalidChange
from changes.records.models import ChangeRecord
from governance.authority.selectors import may_act
from governance.authority.services import is_administrator
from governance.ledger import services as ledger
from governance.models import Service, User

State = ChangeRecord.State

# What a person may do by hand, from each state. Authorise → scheduled and the moves into
# implement and review are the linked releases' to make (their approvals and deployments);
# a change without releases is scheduled by hand once assessed.
MANUAL_MOVES: dict[str, tuple[str, ...]] = {
    State.NEW: (State.ASSESS, State.CANCELLED),
    State.ASSESS: (State.AUTHORISE, State.SCHEDULED, State.CANCELLED),
    State.AUTHORISE: (State.ASSESS, State.CANCELLED),
    State.SCHEDULED: (State.IMPLEMENT, State.CANCELLED),
    State.IMPLEMENT: (State.REVIEW,),
    State.REVIEW: (State.CLOSED,),
    State.CLOSED: (),
    State.CANCELLED: (),
}
# Fields a person edits; the rest (state, source, external ids) move only through services.
EDITABLE_FIELDS = (
    "title",
    "description",
    "type",
    "risk",
    "impact",
    "planned_start",
    "planned_end",
    "time_zone",
    "implementer",
    "implementation_plan",
    "test_plan",
    "backout_plan",
)


@dataclass
class ChangeInput:
    """A validated change, as the page's form or the API's serializer produce it."""

    title: str
    services: list[Service]
    type: str = ChangeRecord.Type.NORMAL
    ref: str = ""
    description: str = ""
    risk: str = ChangeRecord.Level.MODERATE
    impact: str = ChangeRecord.Level.MODERATE
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    time_zone: str = "UTC"
    implementer: User | None = None
    implementation_plan: str = ""
    test_plan: str = ""
    backout_plan: str = ""


@dataclass(frozen=True)
class ReleaseProgress:
    """Where one release linked to a change stands, as the approvals app knows it."""

    release_id: int
    status: str  # the approval request's status: pending, approved, rejected, expired, withdrawn
    deployed: bool  # a successful deployment has been reported


def may_write_change(user: User, services: Iterable[Service]) -> bool:
    """Administrators, and release managers of every service the change affects."""
    if is_administrator(user):
        return True
    services = list(services)
    return bool(services) and all(may_act(user, "request", s, None) for s in services)


def open_change(*, data: ChangeInput, actor: User) -> ChangeRecord:
    """Open a change by hand (state new); its ref is generated when none is given."""
    _check_writer(actor, data.services)
    _check_input(data)
    with transaction.atomic():
        ref = data.ref or _next_ref()
        if ChangeRecord.objects.filter(ref=ref).exists():
            raise InvalidChange(
                f"A change record {ref} already exists.",
                fields={"ref": ["Already in use."]},
            )
        change = ChangeRecord.objects.create(
            ref=ref,
            author=actor,
            **{name: getattr(data, name) for name in EDITABLE_FIELDS},
        )
        change.services.set(data.services)
        ledger.append(
            kind="change.opened",
            subject=f"change:{change.pk}",
            actor=actor.username,
            payload={"ref": ref, **_described(change)},
        )
    return change


def update_change(*, change: ChangeRecord, data: ChangeInput, actor: User) -> ChangeRecord:
    """Edit a change's description, window, people and plans; the ledger keeps what changed."""
    _check_writer(actor, list(change.services.all()) + list(data.services))
    _check_input(data)
    with transaction.atomic():
        change = ChangeRecord.objects.select_for_update().get(pk=change.pk)
        _check_editable(change)
        before = _described(change)
        for name in EDITABLE_FIELDS:
            setattr(change, name, getattr(data, name))
        change.updated_at = timezone.now()
        change.save()
        change.services.set(data.services)
        after = _described(change)
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        if changed:
            ledger.append(
                kind="change.updated",
                subject=f"change:{change.pk}",
                actor=actor.username,
                payload={"ref": change.ref, "changed": changed},
            )
    return change


def move_change(
    *,
    change: ChangeRecord,
    to: str,
    actor: User,
    reason: str,
    close_code: str = "",
) -> ChangeRecord:
    """A person moves the change along its life cycle (assess, cancel, review, close)."""
    _check_writer(actor, change.services.all())
    reason = reason.strip()
    if not reason:
        raise InvalidChange("Say why the change moves.", fields={"reason": ["Required."]})
    with transaction.atomic():
        change = ChangeRecord.objects.select_for_update().get(pk=change.pk)
        _check_editable(change)
        if to not in MANUAL_MOVES[change.state]:
            allowed = ", ".join(State(s).label.lower() for s in MANUAL_MOVES[change.state])
            raise ChangeConflict(
                f"Change {change.ref} is {change.get_state_display().lower()}; it can move to "
                f"{allowed or 'nothing else'} by hand."
            )
        if to == State.CLOSED and close_code not in ChangeRecord.CloseCode.values:
            raise InvalidChange(
                "Closing a change needs a close code: successful, successful with issues or "
                "unsuccessful.",
                fields={"close_code": ["Required to close."]},
            )
        extra = {"close_code": close_code, "close_notes": reason} if to == State.CLOSED else {}
        _move(change, to, actor.username, reason, **extra)
    return change


def follow_releases(
    *, change: ChangeRecord, releases: Iterable[ReleaseProgress], actor: User | None
) -> ChangeRecord:
    """Move the change to where its linked releases say it is.

    Releases still in play (pending or approved) count; rejected, expired and withdrawn ones do
    not. All approved → scheduled; some deployed → implement; all deployed → review. A change
    moves forwards only, except that a new pending release takes a scheduled change back to
    authorise. Ended changes and changes mirrored from an ITSM tool are left alone: the tool
    says where those stand.
    """
    target = _state_from(list(releases))
    with transaction.atomic():
        change = ChangeRecord.objects.select_for_update().get(pk=change.pk)
        if target is None or change.source != ChangeRecord.Source.SIGNOFF:
            return change
        if change.state in ChangeRecord.ENDED_STATES or change.state == target:
            return change
        back_to_authorise = change.state == State.SCHEDULED and target == State.AUTHORISE
        if ChangeRecord.rank(target) < ChangeRecord.rank(change.state) and not back_to_authorise:
            return change
        _move(change, target, actor.username if actor else "system", _why(target))
    return change


def _state_from(releases: list[ReleaseProgress]) -> str | None:
    live = [r for r in releases if r.status in ("pending", "approved")]
    if not live:
        return None
    deployed = [r for r in live if r.deployed]
    if deployed:
        return State.REVIEW if len(deployed) == len(live) else State.IMPLEMENT
    if all(r.status == "approved" for r in live):
        return State.SCHEDULED
    return State.AUTHORISE


def _why(target: str) -> str:
    return {
        State.AUTHORISE: "A linked release is waiting for approval.",
        State.SCHEDULED: "Every linked release is approved.",
        State.IMPLEMENT: "A linked release has been deployed.",
        State.REVIEW: "Every linked release has been deployed.",
    }[target]


def set_change_state(
    *, change: ChangeRecord, state: str, actor: User | str, reason: str
) -> ChangeRecord:
    """Put a change in `state` whatever it was (an ITSM tool's word), recorded in the ledger."""
    with transaction.atomic():
        change = ChangeRecord.objects.select_for_update().get(pk=change.pk)
        if change.state != state:
            _move(change, state, getattr(actor, "username", actor), reason)
    return change


def _move(change: ChangeRecord, to: str, actor: str, reason: str, **extra) -> None:
    now = timezone.now()
    previous = change.state
    fields = {"state": to, "updated_at": now, **extra}
    if to in ChangeRecord.ENDED_STATES:
        fields["closed_at"] = now
    ChangeRecord.objects.filter(pk=change.pk).update(**fields)
    for name, value in fields.items():
        setattr(change, name, value)
    ledger.append(
        kind="change.state_changed",
        subject=f"change:{change.pk}",
        actor=actor,
        payload={"ref": change.ref, "from": previous, "to": to, "reason": reason, **extra},
    )


def find_or_open_change(
    *,
    ref: str,
    type: str,
    title: str,
    author: User | None,
    actor: User,
    service: Service,
    incident: Incident | None = None,
) -> ChangeRecord:
    """The change record with `ref`, opening it when it does not exist yet; `service` (the
    release's) is added to the services it affects.

    `incident` names the incident the change fixes; it is set when the change is opened, and a
    later request naming another incident for the same change is refused.
    Must run inside the caller's transaction (the release request that needs it).
    """
    change = ChangeRecord.objects.select_for_update().filter(ref=ref).first()
    if change is not None:
        if incident is not None and change.incident_id != incident.pk:
            raise InvalidIncident(
                f"Change record {ref} already exists without incident {incident.pk}; "
                "a change names the incident it fixes when it is opened.",
                fields={"change": {"incident": ["Does not match the existing change record."]}},
            )
        change.services.add(service)
        return change
    try:
        # A savepoint, so that losing a race with a concurrent request for the same new ref
        # leaves the outer transaction usable and simply links the winner's record.
        with transaction.atomic():
            change = ChangeRecord.objects.create(
                ref=ref, type=type, title=title or ref, author=author, incident=incident
            )
    except IntegrityError:
        change = ChangeRecord.objects.select_for_update().get(ref=ref)
        change.services.add(service)
        return change
    change.services.add(service)
    ledger.append(
        kind="change.opened",
        subject=f"change:{change.pk}",
        actor=actor.username,
        payload={
            "ref": ref,
            "type": type,
            "title": change.title,
            "services": [service.slug],
            **({"incident": incident.label} if incident else {}),
        },
    )
    return change


def require_authorised_change(ref: str) -> ChangeRecord:
    """The ITSM-authorised change `ref`, for a policy that lets no release name anything else."""
    change = ChangeRecord.objects.filter(ref=ref).first()
    if change is None or change.source == ChangeRecord.Source.SIGNOFF:
        raise InvalidChange(
            f"Change {ref} is not known from the ITSM tool; this organisation's policy requires "
            "an existing change authorised there.",
            fields={"change": {"ref": ["No such change in the ITSM tool."]}},
        )
    if not change.is_authorised:
        raise InvalidChange(
            f"Change {ref} is {change.get_state_display().lower()} in the ITSM tool; this "
            "organisation's policy requires it to be authorised (scheduled or implementing).",
            fields={"change": {"ref": ["Not authorised in the ITSM tool."]}},
        )
    return change


def _check_writer(actor: User, services: Iterable[Service]) -> None:
    if not may_write_change(actor, services):
        raise ChangeForbidden(
            "Only release managers of every service the change affects, or administrators, "
            "may write this change."
        )


def _check_editable(change: ChangeRecord) -> None:
    if change.source != ChangeRecord.Source.SIGNOFF:
        raise ChangeConflict(
            f"Change {change.ref} is mirrored from {change.get_source_display()}; change it there."
        )
    if change.state in ChangeRecord.ENDED_STATES:
        raise ChangeConflict(f"Change {change.ref} is {change.get_state_display().lower()}.")


def _check_input(data: ChangeInput) -> None:
    problems: dict[str, list[str]] = {}
    if not data.title.strip():
        problems["title"] = ["Required."]
    if not data.services:
        problems["services"] = ["Name at least one service the change affects."]
    if data.time_zone not in _zones():
        problems["time_zone"] = ["Not a time zone name such as Europe/Paris."]
    if (data.planned_start is None) != (data.planned_end is None):
        problems["planned_end"] = ["Give both the start and the end of the window, or neither."]
    elif data.planned_start and data.planned_end <= data.planned_start:
        problems["planned_end"] = ["The window must end after it starts."]
    if data.implementer is not None and (
        data.implementer.is_service_account or not data.implementer.is_active
    ):
        problems["implementer"] = ["The implementer must be an active person."]
    if problems:
        raise InvalidChange(
            "The change cannot be saved: "
            + " ".join(
                f"{name.replace('_', ' ')}: {' '.join(msgs)}" for name, msgs in problems.items()
            ),
            fields=problems,
        )


def _zones() -> set[str]:
    return available_timezones()


def _next_ref() -> str:
    last = (
        ChangeRecord.objects.filter(ref__startswith="SO-CHG-")
        .order_by("-ref")
        .values_list("ref", flat=True)
        .first()
    )
    number = int(last.removeprefix("SO-CHG-")) + 1 if last and last[7:].isdigit() else 1
    return f"SO-CHG-{number:06d}"


def _described(change: ChangeRecord) -> dict:
    return {
        "title": change.title,
        "type": change.type,
        "risk": change.risk,
        "impact": change.impact,
        "planned_start": change.planned_start.isoformat() if change.planned_start else None,
        "planned_end": change.planned_end.isoformat() if change.planned_end else None,
        "time_zone": change.time_zone,
        "implementer": change.implementer.username if change.implementer else None,
        "services": sorted(change.services.values_list("slug", flat=True)) if change.pk else [],
        "description": change.description,
        "implementation_plan": change.implementation_plan,
        "test_plan": change.test_plan,
        "backout_plan": change.backout_plan,
    }
