"""Change records: the ITSM side of a release. Every approval request links to one.

A change follows ServiceNow's life cycle (new → assess → authorise → scheduled → implement →
review → closed, or cancelled). People move it by hand where a person decides (assessment,
closing, cancelling); its linked releases move it where Signoff knows the answer (all approved,
deployed). A change mirrored from ServiceNow takes its state from there.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from governance.models import Service, User


class ChangeRecord(models.Model):
    """A change (standard / normal / emergency), possibly mirrored from an external ITSM tool."""

    class Type(models.TextChoices):
        STANDARD = "standard", "Standard"
        NORMAL = "normal", "Normal"
        EMERGENCY = "emergency", "Emergency"

    class State(models.TextChoices):
        NEW = "new", "New"
        ASSESS = "assess", "Assess"
        AUTHORISE = "authorise", "Authorise"
        SCHEDULED = "scheduled", "Scheduled"
        IMPLEMENT = "implement", "Implement"
        REVIEW = "review", "Review"
        CLOSED = "closed", "Closed"
        CANCELLED = "cancelled", "Cancelled"

    class Level(models.TextChoices):
        LOW = "low", "Low"
        MODERATE = "moderate", "Moderate"
        HIGH = "high", "High"

    class Source(models.TextChoices):
        SIGNOFF = "signoff", "Signoff"
        SERVICENOW = "servicenow", "ServiceNow"

    class CloseCode(models.TextChoices):
        SUCCESSFUL = "successful", "Successful"
        SUCCESSFUL_ISSUES = "successful_issues", "Successful with issues"
        UNSUCCESSFUL = "unsuccessful", "Unsuccessful"

    # The order of the life cycle; automatic moves only go forwards along it.
    LIFE_CYCLE = (
        State.NEW,
        State.ASSESS,
        State.AUTHORISE,
        State.SCHEDULED,
        State.IMPLEMENT,
        State.REVIEW,
        State.CLOSED,
    )
    ENDED_STATES = (State.CLOSED, State.CANCELLED)
    # Authorised: what an ITSM tool must say before a policy that requires it lets a release in.
    AUTHORISED_STATES = (State.SCHEDULED, State.IMPLEMENT, State.REVIEW)

    ref = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=12, choices=Type.choices, default=Type.NORMAL)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.NEW)
    risk = models.CharField(max_length=10, choices=Level.choices, default=Level.MODERATE)
    impact = models.CharField(max_length=10, choices=Level.choices, default=Level.MODERATE)
    planned_start = models.DateTimeField(null=True, blank=True, db_index=True)
    planned_end = models.DateTimeField(null=True, blank=True)
    time_zone = models.CharField(
        max_length=64, default="UTC", help_text="The zone the planned window is written in."
    )
    services = models.ManyToManyField(Service, related_name="changes", blank=True)
    author = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="authored_changes"
    )
    implementer = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="implemented_changes"
    )
    implementation_plan = models.TextField(blank=True)
    test_plan = models.TextField(blank=True)
    backout_plan = models.TextField(blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.SIGNOFF)
    external_id = models.CharField(max_length=64, blank=True, help_text="ServiceNow's sys_id.")
    external_url = models.URLField(max_length=500, blank=True)
    external_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="sys_updated_on of the last record applied."
    )
    incident = models.ForeignKey(
        "changes.Incident",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="changes",
        help_text="The incident this change fixes (an emergency declares it).",
    )
    close_code = models.CharField(max_length=20, choices=CloseCode.choices, blank=True)
    close_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(planned_end__isnull=True)
                | Q(planned_start__isnull=True)
                | Q(planned_end__gt=F("planned_start")),
                name="change_window_ends_after_start",
            ),
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="change_external_id_unique_per_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ref} {self.title}"

    @property
    def is_approvable(self) -> bool:
        """A release may be approved and deployed while its change has not ended."""
        return self.state not in self.ENDED_STATES

    @property
    def is_authorised(self) -> bool:
        return self.state in self.AUTHORISED_STATES

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @classmethod
    def rank(cls, state: str) -> int:
        """Position along the life cycle; cancelled ranks with closed (both end it)."""
        if state == cls.State.CANCELLED:
            return len(cls.LIFE_CYCLE) - 1
        return cls.LIFE_CYCLE.index(state)
