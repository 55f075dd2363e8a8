"""Reads about incidents: what holds a release now, and the counts policies see."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from changes.incidents.models import Incident, blocking_severity, blocking_urgency

HIGH_RISK = "high"
SEVERITY_KEYS = ("P1", "P2", "P3", "P4", "P5")


def incident_hold_reasons(
    *, service_id: int, environment_risk: str, excepted: bool = False
) -> list[str]:
    """Why open blocking incidents hold this release now, in words a person can act on.

    Only releases to high-risk environments are held, by any open blocking incident on the
    service or on a service it depends on. `excepted`: the release's change holds an emergency
    exception in force now (the approvals app knows), so no incident holds it; outside its
    exception an emergency change is held like any other. One query, whatever the data size.
    """
    if environment_risk != HIGH_RISK or excepted:
        return []
    return [_reason(i) for i in Incident.objects.holding_for_gate(service_id, excluded_id=None)]


def _reason(incident: Incident) -> str:
    level = incident.priority or f"{incident.get_urgency_display().lower()} urgency"
    return (
        f"Open incident {incident.label} ({level}, {incident.get_status_display().lower()}): "
        f"“{incident.title}” holds releases to high-risk environments until it is resolved; "
        "approvals count once it is."
    )


def incident_context(service_id: int, now: datetime | None = None) -> dict:
    """`incidents` for policies: open ones and those opened in the last 7 and 30 days, on the
    service or a service it depends on, by priority (`P1`..`P5`, `unknown`) and in `total`."""
    now = now or timezone.now()
    affecting = Incident.objects.affecting(service_id).order_by()
    counts = affecting.aggregate(
        open=Count("pk", filter=Q(status__in=Incident.OPEN_STATUSES), distinct=True),
        open_blocking=Count(
            "pk",
            filter=Q(status__in=Incident.OPEN_STATUSES)
            & (Q(severity__lte=blocking_severity()) | Q(urgency=blocking_urgency())),
            distinct=True,
        ),
        **_window_counts(now, 7),
        **_window_counts(now, 30),
    )
    return {
        "open": counts["open"],
        "open_blocking": counts["open_blocking"],
        "last_7_days": {key: counts[f"d7_{key}"] for key in (*SEVERITY_KEYS, "unknown", "total")},
        "last_30_days": {key: counts[f"d30_{key}"] for key in (*SEVERITY_KEYS, "unknown", "total")},
    }


def _window_counts(now: datetime, days: int) -> dict:
    since = Q(opened_at__gte=now - timedelta(days=days))
    counts = {
        f"d{days}_P{level}": Count("pk", filter=since & Q(severity=level), distinct=True)
        for level in range(1, 6)
    }
    counts[f"d{days}_unknown"] = Count("pk", filter=since & Q(severity__isnull=True), distinct=True)
    counts[f"d{days}_total"] = Count("pk", filter=since, distinct=True)
    return counts
