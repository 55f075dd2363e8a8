"""Change records: the ITSM side of a release. Every approval request links to one."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.models import User


class ChangeRecord(models.Model):
    """A change (standard / normal / emergency), possibly mirrored from an external ITSM tool."""

    class Type(models.TextChoices):
        STANDARD = "standard", "Standard"
        NORMAL = "normal", "Normal"
        EMERGENCY = "emergency", "Emergency"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        APPROVED = "approved", "Approved"
        IMPLEMENTED = "implemented", "Implemented"
        WITHDRAWN = "withdrawn", "Withdrawn"
        CLOSED = "closed", "Closed"

    # A release may only be approved while its change is still live.
    APPROVABLE_STATES = (State.OPEN, State.APPROVED)

    ref = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=12, choices=Type.choices, default=Type.NORMAL)
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    author = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="authored_changes"
    )
    external_url = models.URLField(blank=True)
    incident = models.ForeignKey(
        "changes.Incident",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="changes",
        help_text="The incident this change fixes: an emergency fix is not held by it.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.ref} {self.title}"

    @property
    def is_approvable(self) -> bool:
        return self.state in self.APPROVABLE_STATES
