"""Access review campaigns: every role grant, its findings, and the certifier's keep or revoke."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.models.authority import Environment, Role, RoleAssignment, Service, ServiceScoped
from governance.models.people import Team, User


class AccessReview(models.Model):
    """One campaign (quarterly, or started by an administrator) over all role grants."""

    name = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name


class AccessReviewItem(ServiceScoped, models.Model):
    """One role grant as it stood when the campaign started, with what the review found."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "To certify"
        KEEP = "keep", "Kept"
        REVOKE = "revoke", "Revoked"

    class Finding(models.TextChoices):
        """What a review found about a grant: the code is stored, the label is shown."""

        ORPHANED = "orphaned", "Orphaned"
        UNUSED = "unused", "Unused for 90 days"
        EXCESSIVE = "excessive", "Excessive"
        NO_EXPIRY = "no_expiry", "No expiry"
        GRANTOR_NOT_ADMIN = "grantor_not_admin", "Grantor no longer an administrator"

    review = models.ForeignKey(AccessReview, on_delete=models.CASCADE, related_name="items")
    # The grant itself may be revoked later; the item keeps what it was.
    assignment = models.ForeignKey(
        RoleAssignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=20, choices=Role.choices)
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    granted_by = models.CharField(max_length=150, blank=True)
    granted_at = models.DateTimeField()
    findings = models.JSONField(default=list, help_text="[{code, text}] found at campaign start.")
    # The same codes as ",orphaned,unused," so that lists can filter on them in any database.
    finding_codes = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    decided_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["review", "user__username", "role"]

    def __str__(self) -> str:
        return f"{self.user} {self.role} ({self.outcome})"

    @property
    def labelled_findings(self) -> list[dict[str, str]]:
        """The findings with the label of each code: `[{code, label, text}]`."""
        return [{**finding, "label": finding_label(finding["code"])} for finding in self.findings]


def finding_label(code: str) -> str:
    """The words for a finding code; a code no longer known still reads as words."""
    if code in AccessReviewItem.Finding.values:
        return AccessReviewItem.Finding(code).label
    return code.replace("_", " ").capitalize()
