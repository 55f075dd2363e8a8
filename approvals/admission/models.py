"""Image promotion across clusters: the digests each cluster's admission webhook let in."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.models import Target


class Admission(models.Model):
    """A release's digest admitted into a cluster (first and last time), for promotion views.

    One row per cluster and release, updated in place: pods restart far more often than
    anyone needs a row for.
    """

    cluster = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="admissions")
    release = models.ForeignKey(
        "approvals.Release", on_delete=models.CASCADE, related_name="admissions"
    )
    digest = models.CharField(max_length=71)
    namespace = models.CharField(max_length=253)
    workload = models.CharField(max_length=300, help_text="Kind/name of the admitted object.")
    first_admitted_at = models.DateTimeField(default=timezone.now)
    last_admitted_at = models.DateTimeField(default=timezone.now)
    emergency = models.BooleanField(
        default=False, help_text="Let in under an emergency exception, with a warning."
    )

    class Meta:
        ordering = ["-last_admitted_at"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "release"], name="unique_admission")
        ]

    def __str__(self) -> str:
        return f"{self.release_id} in {self.cluster}"
