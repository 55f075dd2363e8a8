"""Incidents from PagerDuty, ServiceNow or the API, and the integrations that bring them in.

An open incident at or above the blocking threshold holds releases of its services (and of the
services depending on them) to high-risk environments; see `changes.incidents.selectors`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.models import Service, User

# The query of IncidentQuerySet.holding_for_gate; table names from the models' _meta.
GATE_SQL = """
SELECT i.* FROM {incident} i
WHERE i.status IN ({statuses})
  AND (i.severity <= %s OR i.urgency = %s)
  AND i.id <> %s
  AND EXISTS (
    SELECT 1 FROM {services} s
    WHERE s.incident_id = i.id AND (
      s.service_id = %s
      OR s.service_id IN (SELECT d.to_service_id FROM {depends_on} d WHERE d.from_service_id = %s)
    )
  )
ORDER BY i.opened_at, i.id
LIMIT 5
"""


def blocking_severity() -> int:
    """Incidents at this severity or worse block (1 is the worst, PagerDuty's P1)."""
    return settings.SIGNOFF_INCIDENT_BLOCKING_PRIORITY


def blocking_urgency() -> str:
    """The urgency that blocks whatever the priority; a value no incident has when none does."""
    return "high" if settings.SIGNOFF_INCIDENT_BLOCKING_URGENCY == "high" else "(none)"


class IncidentQuerySet(models.QuerySet):
    def open(self) -> IncidentQuerySet:
        return self.filter(status__in=Incident.OPEN_STATUSES)

    def blocking(self) -> IncidentQuerySet:
        """At or above the threshold: by default priority P1 (severity 1) or high urgency."""
        return self.filter(
            models.Q(severity__lte=blocking_severity()) | models.Q(urgency=blocking_urgency())
        )

    def affecting(self, service_id: int) -> IncidentQuerySet:
        """Incidents on the service or on a service it depends on (direct dependencies)."""
        dependencies = Service.depends_on.through.objects.filter(from_service_id=service_id).values(
            "to_service_id"
        )
        return self.filter(
            models.Q(services=service_id) | models.Q(services__in=dependencies)
        ).distinct()

    def holding_for_gate(self, service_id: int, excluded_id: int | None) -> models.RawQuerySet:
        """`open().blocking().affecting(service_id)` without `excluded_id`, oldest first, at
        most five, written as SQL: the gate asks at every pipeline run, and compiling the ORM
        version cost more than running it."""
        names = {
            "incident": Incident._meta.db_table,
            "services": Incident.services.through._meta.db_table,
            "depends_on": Service.depends_on.through._meta.db_table,
        }
        statuses = list(Incident.OPEN_STATUSES)
        sql = GATE_SQL.format(statuses=", ".join(["%s"] * len(statuses)), **names)
        params = [*statuses, blocking_severity(), blocking_urgency()]
        params += [excluded_id or 0, service_id, service_id]
        return self.model.objects.raw(sql, params)


class Incident(models.Model):
    """An incident as its source reports it; one row per (source, external id)."""

    class Source(models.TextChoices):
        PAGERDUTY = "pagerduty", "PagerDuty"
        SERVICENOW = "servicenow", "ServiceNow"
        API = "api", "API"

    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    class Urgency(models.TextChoices):
        HIGH = "high", "High"
        LOW = "low", "Low"

    OPEN_STATUSES = (Status.TRIGGERED, Status.ACKNOWLEDGED)

    source = models.CharField(max_length=12, choices=Source.choices)
    external_id = models.CharField(max_length=100)
    external_url = models.URLField(max_length=500, blank=True)
    title = models.CharField(max_length=500)
    priority = models.CharField(max_length=20, blank=True, help_text='As the source says, "P1".')
    severity = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 (worst) to 5, from the priority; empty when unknown."
    )
    urgency = models.CharField(max_length=4, choices=Urgency.choices, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TRIGGERED)
    services = models.ManyToManyField(Service, related_name="incidents", blank=True)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    reported_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="unique_incident_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.title}"

    @property
    def label(self) -> str:
        return f"{self.get_source_display()} {self.external_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_blocking(self) -> bool:
        severe = self.severity is not None and self.severity <= blocking_severity()
        return self.is_open and (severe or self.urgency == blocking_urgency())


class IntegrationConfig(models.Model):
    """An inbound integration's signing secrets. Several during a rotation; never shown whole.

    Not registered with django-auditlog: its history would keep the secrets in clear. The ledger
    records each change with the secrets' last four characters only.
    """

    source = models.CharField(max_length=12, choices=Incident.Source.choices, unique=True)
    secrets = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.get_source_display()} ({len(self.secrets)} secret(s))"

    @property
    def masked_secrets(self) -> list[str]:
        return [mask_secret(secret) for secret in self.secrets]


def mask_secret(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) > 8 else "…"


class ExternalServiceMapping(models.Model):
    """An outside tool's service id (a PagerDuty service) mapped to a catalogue service."""

    source = models.CharField(max_length=12, choices=Incident.Source.choices)
    external_id = models.CharField(max_length=100)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="unique_external_service"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id} → {self.service.slug}"


class WebhookDelivery(models.Model):
    """A delivery already handled, so a redelivery with the same id changes nothing."""

    source = models.CharField(max_length=12, choices=Incident.Source.choices)
    delivery_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "delivery_id"], name="unique_delivery"),
        ]

    def __str__(self) -> str:
        return f"{self.source} delivery {self.delivery_id}"
