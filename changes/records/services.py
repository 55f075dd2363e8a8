"""Change-record actions."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from changes.exceptions import InvalidIncident
from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from governance.ledger import services as ledger
from governance.models import User


def find_or_open_change(
    *,
    ref: str,
    type: str,
    title: str,
    author: User | None,
    actor: User,
    incident: Incident | None = None,
) -> ChangeRecord:
    """The change record with `ref`, opening it when it does not exist yet.

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
        return change
    try:
        # A savepoint, so that losing a race with a concurrent request for the same new ref
        # leaves the outer transaction usable and simply links the winner's record.
        with transaction.atomic():
            change = ChangeRecord.objects.create(
                ref=ref, type=type, title=title or ref, author=author, incident=incident
            )
    except IntegrityError:
        return ChangeRecord.objects.select_for_update().get(ref=ref)
    ledger.append(
        kind="change.opened",
        subject=f"change:{change.pk}",
        actor=actor.username,
        payload={
            "ref": ref,
            "type": type,
            "title": change.title,
            **({"incident": incident.label} if incident else {}),
        },
    )
    return change


def set_change_state(*, change: ChangeRecord, state: str, actor: User, reason: str) -> ChangeRecord:
    """Move a change record to `state` (e.g. withdrawn), recorded in the ledger."""
    with transaction.atomic():
        previous = change.state
        ChangeRecord.objects.filter(pk=change.pk).update(state=state)
        ledger.append(
            kind="change.state_changed",
            subject=f"change:{change.pk}",
            actor=actor.username,
            payload={"ref": change.ref, "from": previous, "to": state, "reason": reason},
        )
    change.refresh_from_db()
    return change
