"""Post-deploy verification: the health results gathered during a deployment's window."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class HealthCheck(models.Model):
    """One health result for a deployment: a poll of a health URL or a report through the API."""

    class Source(models.TextChoices):
        POLL = "poll", "Polled"
        REPORT = "report", "Reported"

    deployment = models.ForeignKey(
        "approvals.Deployment", on_delete=models.CASCADE, related_name="health_checks"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    healthy = models.BooleanField()
    url = models.URLField(max_length=500, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    reported_by = models.CharField(max_length=150, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["checked_at", "pk"]

    def __str__(self) -> str:
        return f"{self.deployment_id} {'healthy' if self.healthy else 'unhealthy'}"
