"""Declaring emergencies in tests through the real service, on a release's change."""

from __future__ import annotations

from datetime import datetime

from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency
from approvals.models import Release
from governance.models import Role, User
from tests import factories


def declarer_for(release: Release) -> User:
    """A release manager of the release's service (made once per test)."""
    person = User.objects.filter(username="emil").first()
    if person is None:
        person = factories.UserFactory(username="emil", first_name="Emil")
    factories.grant(person, Role.RELEASE_MANAGER, release.service)
    return person


def declare_for(
    release: Release, *, hours: int = 4, now: datetime | None = None, incident=None
) -> EmergencyException:
    """Declare an emergency on `release`'s change: an exception of `hours` from `now`."""
    return declare_emergency(
        actor=declarer_for(release),
        service=release.service,
        title="",
        justification="Checkout is down for every customer.",
        incident=incident,
        outage="" if incident else "Checkout returns 500 for every request.",
        controls=["extra_monitoring"],
        hours=hours,
        change=release.change,
        now=now,
    )


def counts() -> dict[str, int]:
    """Rows a declaration, an end or a review can write, to prove a refusal wrote nothing."""
    from changes.cab.models import AgendaItem
    from changes.records.models import ChangeRecord
    from governance.models import LedgerEntry, Notification
    from governance.notifications.models import OutboundEvent

    models = (EmergencyException, ChangeRecord, LedgerEntry, Notification, OutboundEvent)
    found = {model.__name__: model.objects.count() for model in (*models, AgendaItem)}
    found["emergency changes"] = ChangeRecord.objects.filter(type="emergency").count()
    return found


def exception_row(emergency: EmergencyException) -> tuple:
    """What a refused end or review must leave as it was."""
    emergency = EmergencyException.objects.get(pk=emergency.pk)
    return (
        emergency.ends_at,
        emergency.secondary_review,
        emergency.secondary_review_notes,
        emergency.reviewed_by_id,
    )
