"""The emergency path's workflow: declaring, ending, and the CAB's secondary review.

Every write is one transaction with its ledger entry inside; notifications and outbound events
are outbox rows written in the same transaction, delivered after it commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from approvals.emergencies.exceptions import (
    EmergencyConflict,
    EmergencyForbidden,
    InvalidEmergency,
)
from approvals.emergencies.models import EmergencyException
from changes.cab.models import AgendaItem
from changes.cab.services import add_agenda_item, next_meeting
from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from changes.records.services import ChangeInput, open_change, set_change_state
from changes.reviews.models import Review as ChangeReview
from governance.authority.selectors import (
    eligible_approvers,
    has_stage_authority,
    is_auditor,
    may_act,
)
from governance.authority.services import is_administrator
from governance.ledger import services as ledger
from governance.models import Service, User
from governance.notifications.events import publish_event
from governance.notifications.services import notify
from governance.policy.engine import EmergencySettings, emergency_settings
from governance.policy.services import active_policy_version

Review = EmergencyException.Review


def policy_emergency_settings() -> EmergencySettings:
    """The active policy's `emergency:` section (its defaults when no policy is active)."""
    version = active_policy_version()
    return emergency_settings(version.source) if version else EmergencySettings()


def may_declare(actor: User, service: Service) -> bool:
    """Release managers of the service and administrators declare; auditors never do."""
    if not actor.is_active or is_auditor(actor):
        return False
    return is_administrator(actor) or may_act(actor, "request", service, None)


def declare_emergency(
    *,
    actor: User,
    service: Service,
    title: str,
    justification: str,
    incident: Incident | None = None,
    outage: str = "",
    controls: list[str],
    control_notes: str = "",
    hours: int | None = None,
    change: ChangeRecord | None = None,
    now: datetime | None = None,
) -> EmergencyException:
    """Declare an emergency on `service`: an emergency change (opened now, or `change` marked
    as one) holding a time-bound exception from now, with its justification and compensating
    controls. The service's owners and CAB hear of it, monitoring gets an event, and it goes
    on the next CAB meeting's agenda for secondary review (or waits in the CAB queue)."""
    if not may_declare(actor, service):
        raise EmergencyForbidden(
            f"Only release managers of {service.name} and administrators declare emergencies."
        )
    now = now or timezone.now()
    settings = policy_emergency_settings()
    values = _validated_declaration(
        service=service,
        title=title,
        justification=justification,
        incident=incident,
        outage=outage,
        controls=controls,
        control_notes=control_notes,
        hours=hours,
        change=change,
        settings=settings,
    )
    try:
        with transaction.atomic():
            emergency = _declare(actor, service, values, change, incident, now)
    except IntegrityError:
        # Two declarations on one change at once: the unique change decides, the loser is told.
        raise EmergencyConflict(
            "This change already holds an emergency; declare a new one with a new change.",
            fields={"change": ["Already had an emergency."]},
        ) from None
    return emergency


def _declare(
    actor: User,
    service: Service,
    values: dict,
    change: ChangeRecord | None,
    incident: Incident | None,
    now: datetime,
) -> EmergencyException:
    """The declaration's writes, inside the caller's transaction."""
    emergency_change = _emergency_change(actor, service, values, change)
    if incident is not None and emergency_change.incident_id is None:
        # The change fixes the incident: its page and the incident's show the link.
        ChangeRecord.objects.filter(pk=emergency_change.pk).update(incident=incident)
        emergency_change.incident = incident
    # A review already open on the change (its post-mortem, when its release was deployed as an
    # emergency before anyone declared one) is never completed by the declarer either.
    ChangeReview.objects.filter(change=emergency_change, completed_at__isnull=True).update(
        declared_by=actor
    )
    emergency = EmergencyException.objects.create(
        change=emergency_change,
        service=service,
        declared_by=actor,
        justification=values["justification"],
        incident=incident,
        outage=values["outage"],
        controls=values["controls"],
        control_notes=values["control_notes"],
        starts_at=now,
        ends_at=now + timedelta(hours=values["hours"]),
    )
    ledger.append(
        kind="emergency.declared",
        subject=f"change:{emergency_change.pk}",
        actor=actor.username,
        payload=_declared_payload(emergency),
    )
    _announce(emergency, actor, now)
    return emergency


def end_emergency(
    *, emergency: EmergencyException, actor: User, reason: str, now: datetime | None = None
) -> EmergencyException:
    """End an emergency's exception now, before its time: its change's releases take the
    normal path from here. The declarer, a release manager of the service or an administrator."""
    if emergency.declared_by_id != actor.pk and not may_declare(actor, emergency.service):
        raise EmergencyForbidden(
            "Only the declarer, release managers of the service and administrators end an "
            "emergency."
        )
    reason = (reason or "").strip()
    if not reason:
        raise InvalidEmergency(
            "Say why the emergency ends early.", fields={"reason": ["Required."]}
        )
    now = now or timezone.now()
    with transaction.atomic():
        locked = EmergencyException.objects.select_for_update().get(pk=emergency.pk)
        if locked.ends_at <= now:
            raise EmergencyConflict(
                f"The exception already ended at {locked.ends_at:%Y-%m-%d %H:%M} UTC."
            )
        # An exception that has not started yet ends as soon as it starts (the check holds).
        locked.ends_at = max(now, locked.starts_at + timedelta(microseconds=1))
        locked.save(update_fields=["ends_at"])
        ledger.append(
            kind="emergency.ended",
            subject=f"change:{locked.change_id}",
            actor=actor.username,
            payload={
                "emergency": locked.pk,
                "ended_at": locked.ends_at.isoformat(),
                "reason": reason,
            },
        )
    return locked


def record_secondary_review(
    *,
    emergency: EmergencyException,
    actor: User,
    outcome: str,
    notes: str,
    now: datetime | None = None,
) -> EmergencyException:
    """Record the CAB's secondary review of `emergency`: justified, or not justified with the
    actions to take. A CAB member of the service other than the declarer and the change's
    author records it, once."""
    outcome = (outcome or "").strip()
    notes = (notes or "").strip()
    _check_review_input(outcome, notes)
    # Nobody judges their own emergency: the review is a second pair of eyes on the declarer
    # and on whoever wrote the change (they differ when an existing change was declared).
    if emergency.declared_by_id == actor.pk:
        raise EmergencyForbidden("You declared this emergency; another CAB member must review it.")
    if emergency.change.author_id == actor.pk:
        raise EmergencyForbidden(
            f"You wrote {emergency.change.ref}; another CAB member must review its emergency."
        )
    if not has_stage_authority(actor, emergency.service, "cab"):
        raise EmergencyForbidden(
            f"Only CAB members of {emergency.service.name} review its emergencies."
        )
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock makes two members recording at once see each other: the second is told.
        locked = EmergencyException.objects.select_for_update().get(pk=emergency.pk)
        if locked.secondary_review:
            raise EmergencyConflict(
                f"The CAB already reviewed this emergency: {locked.get_secondary_review_display()}."
            )
        locked.secondary_review, locked.secondary_review_notes = outcome, notes
        locked.reviewed_by, locked.reviewed_at = actor, now
        fields = ["secondary_review", "secondary_review_notes", "reviewed_by", "reviewed_at"]
        locked.save(update_fields=fields)
        ledger.append(
            kind="emergency.reviewed",
            subject=f"change:{locked.change_id}",
            actor=actor.username,
            payload={"emergency": locked.pk, "outcome": outcome, "notes": notes},
        )
    return locked


def _check_review_input(outcome: str, notes: str) -> None:
    if outcome not in (Review.JUSTIFIED, Review.NOT_JUSTIFIED):
        raise InvalidEmergency(
            "Choose an outcome: justified or not justified.",
            fields={"outcome": ["Choose justified or not justified."]},
        )
    if outcome == Review.NOT_JUSTIFIED and not notes:
        raise InvalidEmergency(
            "An emergency found not justified needs notes naming the actions to take.",
            fields={"notes": ["Name the actions to take."]},
        )


def _validated_declaration(
    *,
    service: Service,
    title: str,
    justification: str,
    incident: Incident | None,
    outage: str,
    controls: list[str],
    control_notes: str,
    hours: int | None,
    change: ChangeRecord | None,
    settings: EmergencySettings,
) -> dict:
    """The declaration's stored values, or InvalidEmergency naming every bad field."""
    errors: dict[str, list[str]] = {}
    values = {
        "title": (title or "").strip(),
        "justification": (justification or "").strip(),
        "outage": (outage or "").strip(),
        "controls": list(dict.fromkeys(controls or [])),
        "control_notes": (control_notes or "").strip(),
        "hours": settings.exception_hours if hours is None else hours,
    }
    if not values["title"] and change is None:
        errors["title"] = ["Required."]
    if not values["justification"]:
        errors["justification"] = ["Say why this cannot wait for the normal path."]
    _check_incident(service, incident, values["outage"], errors)
    _check_controls(values, settings, errors)
    limit = settings.exception_hours
    if isinstance(values["hours"], bool) or not isinstance(values["hours"], int):
        errors["hours"] = [f"A whole number of hours, 1 to {limit}."]
    elif not 1 <= values["hours"] <= limit:
        errors["hours"] = [f"Between 1 and {limit} hours (the policy's limit)."]
    if change is not None:
        _check_change(service, change, errors)
    if errors:
        name, messages = next(iter(errors.items()))
        raise InvalidEmergency(
            f"{name.replace('_', ' ').capitalize()}: {messages[0]}", fields=errors
        )
    return values


def _check_incident(
    service: Service, incident: Incident | None, outage: str, errors: dict[str, list[str]]
) -> None:
    if incident is None:
        if not outage:
            errors["incident"] = [
                "Link an open incident affecting the service, or describe the outage."
            ]
        return
    affecting = Incident.objects.open().affecting(service.pk).filter(pk=incident.pk)
    if not affecting.exists():
        errors["incident"] = [
            f"Incident {incident.label} is not open on {service.name} or a service it depends on."
        ]


def _check_controls(
    values: dict, settings: EmergencySettings, errors: dict[str, list[str]]
) -> None:
    known = {c.key for c in settings.controls}
    unknown = [key for key in values["controls"] if key not in known]
    if unknown:
        choices = ", ".join(sorted(known))
        errors["controls"] = [f"Unknown control(s): {', '.join(unknown)}; choose from {choices}."]
    elif not values["controls"] and not values["control_notes"]:
        errors["controls"] = ["Choose at least one compensating control, or describe one."]


def _check_change(service: Service, change: ChangeRecord, errors: dict[str, list[str]]) -> None:
    # Read afresh: the caller's copy may be older than the change's state.
    change = ChangeRecord.objects.get(pk=change.pk)
    if not change.services.filter(pk=service.pk).exists():
        errors["change"] = [f"Change {change.ref} does not affect {service.name}."]
    elif not change.is_approvable:
        errors["change"] = [
            f"Change {change.ref} has ended ({change.get_state_display().lower()})."
        ]
    elif EmergencyException.objects.filter(change=change).exists():
        errors["change"] = [
            f"Change {change.ref} already had an emergency; declare a new one with a new change."
        ]


def _emergency_change(
    actor: User, service: Service, values: dict, change: ChangeRecord | None
) -> ChangeRecord:
    """The emergency's change: `change` marked as an emergency, or one opened now, ready to
    authorise (the emergency stage applies to its releases)."""
    if change is None:
        data = ChangeInput(
            title=values["title"][:200],
            services=[service],
            type=ChangeRecord.Type.EMERGENCY,
            description=values["justification"],
            risk=ChangeRecord.Level.HIGH,
        )
        change = open_change(data=data, actor=actor)
    elif change.type != ChangeRecord.Type.EMERGENCY:
        ChangeRecord.objects.filter(pk=change.pk).update(
            type=ChangeRecord.Type.EMERGENCY, updated_at=timezone.now()
        )
        change.type = ChangeRecord.Type.EMERGENCY
        ledger.append(
            kind="change.updated",
            subject=f"change:{change.pk}",
            actor=actor.username,
            payload={"ref": change.ref, "type": ChangeRecord.Type.EMERGENCY},
        )
    if ChangeRecord.rank(change.state) < ChangeRecord.rank(ChangeRecord.State.AUTHORISE):
        change = set_change_state(
            change=change,
            state=ChangeRecord.State.AUTHORISE,
            actor=actor,
            reason="An emergency was declared: its releases are authorised on the emergency path.",
        )
    return change


def _declared_payload(emergency: EmergencyException) -> dict:
    return {
        "emergency": emergency.pk,
        "change": emergency.change.ref,
        "service": emergency.service.slug,
        "justification": emergency.justification,
        "incident": emergency.incident.label if emergency.incident else None,
        "outage": emergency.outage,
        "controls": emergency.controls,
        "control_notes": emergency.control_notes,
        "starts_at": emergency.starts_at.isoformat(),
        "ends_at": emergency.ends_at.isoformat(),
    }


def _announce(emergency: EmergencyException, actor: User, now: datetime) -> None:
    """Tell the owners and the CAB, monitoring, and put it on the CAB's next agenda."""
    service, change = emergency.service, emergency.change
    people = {u.pk: u for u in service.owners.filter(is_active=True)}
    people.update({u.pk: u for u in eligible_approvers(service, "cab")})
    people.pop(actor.pk, None)
    url = reverse("emergencies:emergency_detail", args=[emergency.pk])
    notify(
        people=people.values(),
        subject=f"Emergency declared: {service.name} ({change.ref})",
        body=f"{actor.username} declared an emergency on {service.name}: "
        f"{emergency.justification} The exception runs until "
        f"{emergency.ends_at:%Y-%m-%d %H:%M} UTC; the CAB reviews it afterwards.",
        url=url,
        reason="you own the service or sit on its CAB",
    )
    publish_event(
        kind="emergency.declared",
        subject=f"change:{change.ref}",
        service_id=service.pk,
        payload={**_declared_payload(emergency), "declared_by": actor.username, "url": url},
    )
    meeting = next_meeting(service, now)
    # No meeting scheduled: it waits in the CAB queue, which lists emergencies not yet reviewed.
    if meeting is not None:
        add_agenda_item(
            meeting=meeting,
            key=f"emergency:{emergency.pk}",
            kind=AgendaItem.Kind.EMERGENCY_REVIEW,
            title=f"Emergency {change.ref}: {change.title}",
            detail=emergency.justification,
            change=change,
            actor=actor,
        )
