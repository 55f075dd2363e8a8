"""Where each data-lake destination stands: its watermark, and the record of each export run.

A destination is a Django storage alias (STORAGES["lake"] by default, a folder; or an
S3-compatible bucket). The watermark is the last ledger seq written there; exports only ever move
it forward, one committed batch at a time, so a run that stops half-way resumes where it stopped.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class LakeWatermark(models.Model):
    """How far the ledger has been exported to one destination.

    `pending_through` is the end of the batch being written: set (and committed) before its files
    are written, cleared when the watermark moves past it. A run that finds it set after a crash
    writes exactly that range again, so the files get the same names and bytes, never duplicates.
    """

    destination = models.CharField(max_length=100, unique=True)
    last_seq = models.BigIntegerField(default=0, help_text="The last ledger seq exported.")
    pending_through = models.BigIntegerField(
        null=True, blank=True, help_text="End of the batch being written, if one is under way."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["destination"]

    def __str__(self) -> str:
        return f"lake {self.destination} at #{self.last_seq}"


class LakeExport(models.Model):
    """One export run to one destination: what it covered, what it wrote, how it ended."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    destination = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    from_seq = models.BigIntegerField(help_text="The watermark when the run began.")
    through_seq = models.BigIntegerField(help_text="The watermark when the run ended.")
    entries = models.BigIntegerField(default=0, help_text="Ledger entries read.")
    events = models.BigIntegerField(default=0, help_text="Events written (exported kinds only).")
    files = models.JSONField(default=list, help_text="Names of the files written, in order.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["destination", "-started_at"], name="lake_run_latest")]

    def __str__(self) -> str:
        return f"lake export to {self.destination} ({self.status})"
