"""Fixtures of the emergency path: incidents and freezes through their real services, an
emergency change's release, and the personas who declare and review."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from changes.freezes.services import FreezeInput, create_freeze
from changes.incidents import services as incidents
from changes.incidents.models import Incident
from governance.models import Role
from tests import factories

_ids = itertools.count(1)


def open_incident(service, *, priority: str = "P1", external_id: str | None = None) -> Incident:
    """A blocking incident on `service`, reported as a tool would."""
    incident, _ = incidents.record_incident(
        report=incidents.IncidentReport(
            source=Incident.Source.API,
            external_id=external_id or f"INC-{next(_ids)}",
            title="Checkout failing",
            status="triggered",
            priority=priority,
            urgency="high",
            services=(service,),
        ),
        actor="test",
    )
    return incident


@pytest.fixture
def hard_freeze(administrator, production):
    """`hard_freeze(hours_before=1, hours_after=12)`: a hard freeze on production around now."""

    def make(hours_before: float = 1, hours_after: float = 12):
        now = timezone.now().replace(microsecond=0, tzinfo=None)
        data = FreezeInput(
            name="Quarter close",
            kind="hard",
            time_zone="UTC",
            local_start=now - timedelta(hours=hours_before),
            local_end=now + timedelta(hours=hours_after),
            environments=[production],
            reason="Quarter close",
        )
        return create_freeze(data=data, actor=administrator)

    return make


@pytest.fixture
def emergency_release(org, service, production, pipeline_bot, approver):
    """An approved release of an emergency change to production (the policy's one approver)."""
    release, _ = services.request_approval(
        data=factories.release_input(service, production, change_type="emergency"),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)
    return release


@pytest.fixture
def release_manager(service):
    """Frank, a release manager of payments-api: he declares its emergencies."""
    person = factories.UserFactory(username="frank", first_name="Frank")
    factories.grant(person, Role.RELEASE_MANAGER, service)
    return person


@pytest.fixture
def other_cab_member(db):
    person = factories.UserFactory(username="cora", first_name="Cora")
    factories.grant(person, Role.CAB_MEMBER)
    return person
