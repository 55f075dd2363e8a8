"""Anomaly alerts: one row per unusual pattern found in approval behaviour, with its evidence.

Rows are written by `reporting.anomalies.services` only. The fingerprint (kind, subject and
period) is unique, so running the detectors again never raises the same alert twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import Team, User


class AnomalyAlertQuerySet(models.QuerySet):
    def with_list_related(self) -> AnomalyAlertQuerySet:
        """What the alerts page shows of each row, in the page's one query."""
        return self.select_related("person", "counterpart", "team", "acknowledged_by")

    def open(self) -> AnomalyAlertQuerySet:
        return self.filter(status=AnomalyAlert.Status.OPEN)


class AnomalyAlert(models.Model):
    """Approval behaviour that deviates from a person's or team's own history."""

    class Kind(models.TextChoices):
        RUBBER_STAMP = "rubber_stamp", "Rubber-stamping"
        OFF_HOURS = "off_hours", "Far outside usual hours"
        VOLUME_SPIKE = "volume_spike", "Volume spike"
        RECIPROCITY = "reciprocity", "Reciprocal approvals"
        NEVER_REJECTS = "never_rejects", "Never rejects"
        NEW_CLIENT = "new_client", "Step-up from a new device or address"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    fingerprint = models.CharField(
        max_length=200, unique=True, help_text="kind:subject:period; the same finding twice is one."
    )
    person = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    counterpart = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The other person of a reciprocal pair.",
    )
    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    summary = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, help_text="The decisions and releases behind it.")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.OPEN)
    acknowledged_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    objects = AnomalyAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(person__isnull=False) | Q(team__isnull=False),
                name="anomaly_about_a_person_or_a_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject_label}"

    @property
    def subject_label(self) -> str:
        """Who the alert is about, as people read it."""
        if self.team_id and not self.person_id:
            return f"team {self.team.name}"
        if self.counterpart_id:
            return f"{self.person.username} and {self.counterpart.username}"
        return self.person.username

    def concerns(self, user: User, team_ids: set[int]) -> bool:
        """Whether `user` (a member of `team_ids`) is who, or whose team, the alert is about."""
        return user.pk in (self.person_id, self.counterpart_id) or self.team_id in team_ids
