"""Incident actions: record what a source reports, ingest PagerDuty events, configure sources.

Every incident state change and every configuration change is written to the ledger inside the
transaction that makes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from changes.exceptions import InvalidIncident
from changes.incidents.models import (
    ExternalServiceMapping,
    Incident,
    IntegrationConfig,
    WebhookDelivery,
    mask_secret,
)
from governance.api.parsers import text_problem
from governance.ledger import services as ledger
from governance.models import Service, User

PRIORITY_LEVEL = re.compile(r"^\s*(?:P|SEV|SEV-|PRIORITY\s*)?([1-5])\b", re.IGNORECASE)
MIN_SECRET_LENGTH = 16
# The PagerDuty events that carry the incident itself (`event.data.type == "incident"`).
PAGERDUTY_INCIDENT_EVENTS = frozenset(
    {
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.reopened",
        "incident.priority_updated",
        "incident.escalated",
        "incident.reassigned",
        "incident.delegated",
    }
)


@dataclass(frozen=True)
class IncidentReport:
    """What a source says about one incident now."""

    source: str
    external_id: str
    title: str
    status: str
    external_url: str = ""
    priority: str = ""
    urgency: str = ""
    services: tuple[Service, ...] = field(default_factory=tuple)
    opened_at: datetime | None = None


def severity_of(priority: str) -> int | None:
    """1 (worst) to 5 from "P1", "1", "SEV-2"...; None when the priority says no level."""
    match = PRIORITY_LEVEL.match(priority or "")
    return int(match.group(1)) if match else None


def record_incident(*, report: IncidentReport, actor: str, reporter: User | None = None):
    """Create or update the incident `report` describes; returns (incident, created).

    Ledgered when something changed: `incident.opened` for a new one, `incident.updated` with
    what changed otherwise. Runs in the caller's transaction when there is one.
    """
    with transaction.atomic():
        # get_or_create under the row lock: two first deliveries of one incident racing each
        # other end as one row (the loser re-reads the winner's) rather than a 500.
        incident, created = Incident.objects.select_for_update().get_or_create(
            source=report.source,
            external_id=report.external_id,
            defaults={
                "title": report.title or report.external_id,
                "status": report.status,
                "opened_at": report.opened_at or timezone.now(),
                "reported_by": reporter,
            },
        )
        before = {} if created else _state(incident)
        previous_services = set(incident.services.values_list("slug", flat=True))
        _apply(incident, report, fresh=created)
        changes = {k: [before.get(k), v] for k, v in _state(incident).items() if before.get(k) != v}
        services = {s.slug for s in report.services}
        if not created and not changes and services <= previous_services:
            return incident, False
        incident.updated_at = timezone.now()
        incident.save()
        incident.services.add(*report.services)
        ledger.append(
            kind="incident.opened" if created else "incident.updated",
            subject=f"incident:{incident.pk}",
            actor=actor,
            payload=_ledger_payload(
                incident, services | previous_services, {} if created else changes
            ),
        )
    return incident, created


def _ledger_payload(incident: Incident, services: set[str], changes: dict) -> dict:
    return {
        "source": incident.source,
        "external_id": incident.external_id,
        "title": incident.title,
        "status": incident.status,
        "priority": incident.priority,
        "urgency": incident.urgency,
        "services": sorted(services),
        "changed": changes,
    }


def _state(incident: Incident) -> dict:
    return {
        "status": incident.status,
        "title": incident.title,
        "priority": incident.priority,
        "urgency": incident.urgency,
        "external_url": incident.external_url,
    }


def _apply(incident: Incident, report: IncidentReport, *, fresh: bool) -> None:
    now = timezone.now()
    incident.title = report.title or incident.title or report.external_id
    incident.external_url = report.external_url or incident.external_url
    if report.priority:
        incident.priority, incident.severity = report.priority, severity_of(report.priority)
    incident.urgency = report.urgency or incident.urgency
    if report.status != incident.status or fresh:
        incident.status = report.status
        if report.status == Incident.Status.ACKNOWLEDGED:
            incident.acknowledged_at = incident.acknowledged_at or now
        if report.status == Incident.Status.RESOLVED:
            incident.resolved_at = now
        else:
            incident.resolved_at = None  # reopened


def ingest_pagerduty_event(*, delivery_id: str, payload: dict) -> str:
    """Handle one verified PagerDuty V3 delivery; returns what happened, for the response.

    A redelivery (same `X-Webhook-Id`) changes nothing. Events that do not carry an incident
    (notes, responders, services) are acknowledged and ignored.
    """
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict):
        raise InvalidIncident("The body has no `event` object.")
    event_type = str(event.get("event_type", ""))
    data = event.get("data")
    problem = text_problem(delivery_id)
    if problem:
        # No column can hold it (PostgreSQL refuses NUL): refused before anything is written.
        raise InvalidIncident(f"X-Webhook-Id contains {problem.what}.")
    with transaction.atomic():
        if delivery_id and not _first_delivery(delivery_id):
            return "duplicate"
        if event_type not in PAGERDUTY_INCIDENT_EVENTS:
            return "ignored"
        report = _pagerduty_report(event_type, data)
        _, created = record_incident(report=report, actor="pagerduty")
    return "created" if created else "updated"


def _first_delivery(delivery_id: str) -> bool:
    try:
        with transaction.atomic():  # a savepoint: losing the race leaves the outer block usable
            WebhookDelivery.objects.create(source="pagerduty", delivery_id=delivery_id[:200])
    except IntegrityError:
        return False
    return True


def _pagerduty_report(event_type: str, data: object) -> IncidentReport:
    if not isinstance(data, dict) or data.get("type") != "incident" or not data.get("id"):
        raise InvalidIncident(f"{event_type}: `event.data` is not an incident with an id.")
    status = data.get("status")
    if status not in Incident.Status.values:
        raise InvalidIncident(f"{event_type}: unknown incident status {str(status)[:40]!r}.")
    priority = data.get("priority") if isinstance(data.get("priority"), dict) else {}
    service = data.get("service") if isinstance(data.get("service"), dict) else {}
    urgency = data.get("urgency") if data.get("urgency") in Incident.Urgency.values else ""
    mapped = ExternalServiceMapping.objects.filter(
        source="pagerduty", external_id=str(service.get("id", ""))[:100]
    ).select_related("service")
    return IncidentReport(
        source=Incident.Source.PAGERDUTY,
        external_id=str(data["id"])[:100],
        title=str(data.get("title") or data["id"])[:500],
        status=status,
        external_url=_url(data.get("html_url")),
        priority=str(priority.get("summary") or "")[:20],
        urgency=urgency,
        services=tuple(m.service for m in mapped),
        opened_at=_opened_at(data.get("created_at")),
    )


def _opened_at(value: object) -> datetime | None:
    """`created_at` when it is a real moment; None (the time of receipt) when it is missing or
    impossible ("2026-02-30T10:00:00Z" is well-formed, so parse_datetime raises rather than
    answering None): the incident itself still counts."""
    try:
        moment = parse_datetime(str(value or ""))
    except ValueError:
        return None
    return moment if moment is None or _representable(moment) else None


def _representable(moment: datetime) -> bool:
    """Whether `moment` is a datetime in UTC too: 0001-01-01T00:00+01:00 is stored by
    PostgreSQL as a year before 1, which no Python datetime can hold when it is read back."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _url(value: object) -> str:
    text = str(value or "")
    return text[:500] if text.startswith("https://") else ""


def configure_integration(
    *, source: str, secrets: list[str], actor: str, reason: str = ""
) -> IntegrationConfig:
    """Replace the signing secrets of `source` (two while rotating); ledgered, masked."""
    secrets = list(dict.fromkeys(s.strip() for s in secrets if s.strip()))
    if not secrets:
        raise InvalidIncident("Give at least one signing secret.")
    short = [s for s in secrets if len(s) < MIN_SECRET_LENGTH]
    if short:
        raise InvalidIncident(f"A signing secret has at least {MIN_SECRET_LENGTH} characters.")
    with transaction.atomic():
        config, _ = IntegrationConfig.objects.select_for_update().get_or_create(source=source)
        before = config.masked_secrets
        config.secrets, config.updated_at = secrets, timezone.now()
        config.save()
        ledger.append(
            kind="integration.configured",
            subject=f"integration:{source}",
            actor=actor,
            payload={
                "source": source,
                "secrets": [mask_secret(s) for s in secrets],
                "before": before,
                **({"reason": reason} if reason else {}),
            },
        )
    return config


def map_external_service(
    *, source: str, external_id: str, service: Service, actor: str, reason: str = ""
) -> ExternalServiceMapping:
    """Map an outside service id to a catalogue service (replacing an earlier mapping)."""
    external_id = external_id.strip()
    if not external_id or len(external_id) > 100 or not external_id.isprintable():
        raise InvalidIncident("The external id is 1 to 100 printable characters.")
    with transaction.atomic():
        mapping, created = ExternalServiceMapping.objects.select_for_update().get_or_create(
            source=source, external_id=external_id, defaults={"service": service}
        )
        previous = None if created else mapping.service.slug
        mapping.service = service
        mapping.save()
        ledger.append(
            kind="integration.mapped",
            subject=f"integration:{source}",
            actor=actor,
            payload={
                "external_id": external_id,
                "service": service.slug,
                "before": previous,
                **({"reason": reason} if reason else {}),
            },
        )
    return mapping


def signing_secrets(source: str) -> list[str]:
    config = IntegrationConfig.objects.filter(source=source).first()
    return list(config.secrets) if config else []
