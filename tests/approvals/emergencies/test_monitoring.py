"""Releases of an emergency change are announced to monitoring when approved and deployed."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.services.deployments import record_deployment
from governance.notifications.models import OutboundEvent
from tests import factories
from tests.approvals.emergencies.helpers import declare_for

pytestmark = pytest.mark.django_db


def events() -> list[tuple[str, str, str]]:
    return [
        (e.subject, e.payload["moment"], e.payload["status"])
        for e in OutboundEvent.objects.filter(kind="release.enhanced_monitoring").order_by("pk")
    ]


def test_an_emergency_release_is_announced_when_approved_and_deployed(
    org, service, production, pipeline_bot, approver
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, change_type="emergency"),
        actor=pipeline_bot,
    )
    emergency = declare_for(release)

    factories.decide(release, approver)
    record_deployment(release=release, actor=pipeline_bot, status="succeeded")

    subject = f"release:{release.pk}"
    assert events() == [(subject, "approved", ""), (subject, "deployed", "succeeded")]
    payload = OutboundEvent.objects.filter(kind="release.enhanced_monitoring").last().payload
    assert payload["change"] == release.change.ref
    assert payload["emergency"] == emergency.pk
    assert payload["controls"] == ["extra_monitoring"]
    assert payload["digest"] == release.digest


def test_a_normal_release_is_not_announced(
    production_release, approver, second_approver, cab_member, pipeline_bot
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    record_deployment(release=production_release, actor=pipeline_bot, status="succeeded")

    assert events() == []
