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
