"""Enhanced monitoring: releases of an emergency change are announced to monitoring (an outbound
event through the notification outbox) when they are approved and when they are deployed."""

from __future__ import annotations

from django.urls import reverse

from approvals.emergencies.models import EmergencyException
from approvals.models import Release
from changes.records.models import ChangeRecord
from governance.notifications.events import publish_event

EVENT = "release.enhanced_monitoring"


def announce_enhanced_monitoring(release: Release, *, moment: str, status: str = "") -> bool:
    """Publish `release.enhanced_monitoring` for `release` at `moment` ("approved" or
    "deployed", with the deployment's `status`) when its change is an emergency flagged for
    enhanced monitoring. Call inside the transaction that approves or records the deployment,
    so the event exists exactly when that does. Returns whether an event was written.

    Releases of other changes cost no query: only emergency changes hold an exception.
    """
    change = release.change
    if change.type != ChangeRecord.Type.EMERGENCY:
        return False
    emergency = EmergencyException.objects.filter(
        change_id=change.pk, enhanced_monitoring=True
    ).first()
    if emergency is None:
        return False
    publish_event(
        kind=EVENT,
        subject=f"release:{release.pk}",
        service_id=release.service_id,
        payload={
            "moment": moment,
            "status": status,
            "release": release.pk,
            "service": release.service.slug,
            "version": release.version,
            "environment": release.environment.slug,
            "digest": release.digest,
            "change": change.ref,
            "emergency": emergency.pk,
            "controls": emergency.controls,
            "control_notes": emergency.control_notes,
            "exception_ends_at": emergency.ends_at.isoformat(),
            "url": reverse("approvals:release_detail", args=[release.pk]),
        },
    )
    return True
