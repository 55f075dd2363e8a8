"""Reports made in the background: a long period's compliance report is written by a worker
while its requester watches the progress, then downloads the file."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# Each concern's models too, so Django finds them under the app label `reporting`.
import reporting.anomalies.models
import reporting.lake.models
import reporting.metrics.models
import reporting.reviews.models  # noqa: F401
from governance.models import User


class ReportExport(models.Model):
    """One report asked for and written by a Celery task; only its requester may fetch it."""

    class Kind(models.TextChoices):
        COMPLIANCE = "compliance", "Compliance report"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        PDF = "pdf", "PDF"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    format = models.CharField(max_length=5, choices=Format.choices)
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to="reports/", blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.format}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent_done(self) -> int:
        if not self.rows_total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, self.rows_done * 100 // self.rows_total)
