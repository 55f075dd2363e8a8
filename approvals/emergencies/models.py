"""The emergency path: a time-bound exception, never an unaccountable shortcut.

Declaring an emergency opens an emergency change and grants it an exception for a few hours
(policy, default 4): inside it the policy's emergency stage applies and hard freezes and incident
holds do not block that change's releases. It ends by itself. Compensating controls are chosen
at declaration; a post-mortem is due after deployment and the CAB reviews every emergency.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from governance.models import Service, User


class EmergencyExceptionQuerySet(models.QuerySet):
    def in_force(self, at: datetime) -> EmergencyExceptionQuerySet:
        return self.filter(starts_at__lte=at, ends_at__gt=at)


class EmergencyException(models.Model):
    """The exception an emergency change holds, its justification and compensating controls."""

    class Review(models.TextChoices):
        PENDING = "", "Awaiting CAB secondary review"
        JUSTIFIED = "justified", "Justified"
        NOT_JUSTIFIED = "not_justified", "Not justified"

    change = models.OneToOneField(
        "changes.ChangeRecord", on_delete=models.PROTECT, related_name="emergency"
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="emergencies")
    declared_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    incident = models.ForeignKey(
        "changes.Incident",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="emergencies",
    )
    outage = models.TextField(blank=True, help_text="The outage, when no incident is recorded.")
    controls = models.JSONField(default=list, help_text="Keys of the policy's controls chosen.")
    control_notes = models.TextField(blank=True, help_text="Further controls, in words.")
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(db_index=True)
    enhanced_monitoring = models.BooleanField(default=True)
    secondary_review = models.CharField(
        max_length=15, choices=Review.choices, blank=True, default=Review.PENDING
    )
    secondary_review_notes = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = EmergencyExceptionQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="emergency_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(incident__isnull=False) | ~Q(outage=""),
                name="emergency_names_incident_or_outage",
            ),
        ]

    def __str__(self) -> str:
        return f"Emergency {self.change.ref}"

    def in_force_at(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at
