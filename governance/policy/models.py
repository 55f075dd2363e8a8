"""Policy-as-code documents and their immutable published versions."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.people.models import User


class Policy(models.Model):
    """A policy-as-code document (YAML rules with CEL conditions); each save is a new version."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    source = models.TextField(help_text="YAML: rules with `when:` (CEL) and `require:`.")
    is_active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PolicyVersion(models.Model):
    """An immutable published version of a policy; approval plans reference the one they used."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField()
    checksum = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="unique_policy_version")
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"


class PolicyProposal(models.Model):
    """A policy change waiting for a second administrator (four eyes).

    Needed when the proposer holds approval authority themselves: nobody changes, alone, the
    rules that govern their own approvals.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting for a second administrator"
        APPROVED = "approved", "Approved and published"
        REJECTED = "rejected", "Rejected"

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="proposals")
    source = models.TextField()
    comment = models.TextField(blank=True)
    proposed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    decided_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    loosening = models.JSONField(
        default=list,
        blank=True,
        help_text="What the change loosens on regulated environments, found by simulation; "
        "the second administrator must confirm it explicitly.",
    )
    loosening_confirmed = models.BooleanField(default=False)
    base_version = models.PositiveIntegerField(
        default=0,
        help_text="The policy's version this change was proposed against. Once another version "
        "is published, the proposal is stale: its diff and loosening were judged against "
        "rules no longer in force, so it can only be rejected and proposed again.",
    )

    class Meta:
        ordering = ["-proposed_at"]

    def __str__(self) -> str:
        return f"{self.policy.name} change by {self.proposed_by} ({self.outcome})"

    @property
    def is_stale(self) -> bool:
        """Whether another version of the policy was published since this was proposed."""
        return self.policy.version != self.base_version
