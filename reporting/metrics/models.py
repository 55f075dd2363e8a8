"""The metrics' rollups: one fact row per closed approval request, finished stage and standing
decision, with the dimensions the pages filter and group by copied onto it.

The rows are derived, never edited: `reporting.metrics.rollups` rebuilds a release's rows from
the approval records whenever any of them changed, so a rebuild gives the same rows again. Every
duration is whole seconds, so sums, means and percentiles are plain number aggregates on
PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from django.db import models

from approvals.models import ApprovalStage, Decision, Release
from governance.models import Environment, Service, Team, User


class DelayBucket(models.TextChoices):
    """How long a release waited for its approval, in the buckets its outcomes are compared by."""

    UNDER_HOUR = "lt1h", "Under 1 hour"
    HOURS = "1-4h", "1 to 4 hours"
    DAY = "4-24h", "4 to 24 hours"
    DAYS = "1-3d", "1 to 3 days"
    LONGER = "gt3d", "Over 3 days"


class Abandonment(models.TextChoices):
    """Why a request ended without an approval that was used (NEVER_DECIDED is only ever live)."""

    SUPERSEDED = "superseded", "Superseded by a new request"
    WITHDRAWN = "withdrawn", "Withdrawn"
    EXPIRED = "expired", "Expired"
    NEVER_DECIDED = "never_decided", "Never decided"


class Dimensions(models.Model):
    """What every fact is filtered and grouped by: where the release went and what it was."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, related_name="+")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    change_type = models.CharField(max_length=20)

    class Meta:
        abstract = True


class ReleaseFact(Dimensions):
    """A closed approval request: how long it took, how it ended, how its deployments went."""

    requested_at = models.DateTimeField()
    decided_at = models.DateTimeField()
    outcome = models.CharField(max_length=10)  # the request's final status
    abandonment = models.CharField(max_length=15, choices=Abandonment.choices, blank=True)
    approve_seconds = models.BigIntegerField(null=True)  # approved requests only
    delay_bucket = models.CharField(max_length=5, choices=DelayBucket.choices, blank=True)
    deployed = models.BooleanField(default=False)
    # A deployment failed, was rolled back or failed its verification (the change failure rate).
    failed = models.BooleanField(default=False)
    rolled_back = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["release"], name="metrics_one_release_fact")]
        indexes = [models.Index(fields=["decided_at"], name="metrics_release_decided_idx")]

    def __str__(self) -> str:
        return f"Release {self.release_id}: {self.outcome}"


class StageFact(Dimensions):
    """A finished stage (approved, rejected or cancelled after it was active): its waiting time
    and whether it met its SLA (due_at, from the policy, when it has one)."""

    stage = models.OneToOneField(ApprovalStage, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10)
    activated_at = models.DateTimeField()
    completed_at = models.DateTimeField()
    wait_seconds = models.BigIntegerField()
    sla_seconds = models.BigIntegerField(null=True)
    breached = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["completed_at"], name="metrics_stage_completed_idx")]

    def __str__(self) -> str:
        return f"Stage {self.key} of release {self.release_id}"


class DecisionFact(Dimensions):
    """A standing decision: how long its approver took from the stage's activation."""

    decision = models.OneToOneField(Decision, on_delete=models.CASCADE, related_name="+")
    approver = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    stage_key = models.CharField(max_length=50)
    verdict = models.CharField(max_length=10)
    decided_at = models.DateTimeField()
    wait_seconds = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["decided_at"], name="metrics_decision_decided_idx")]

    def __str__(self) -> str:
        return f"Decision {self.decision_id} by {self.approver_id}"


class MetricsRefresh(models.Model):
    """How far the rollups are up to date: one row, moved forward by each refresh."""

    refreshed_through = models.DateTimeField(
        help_text="Every change made before this time is in the rollups."
    )
    finished_at = models.DateTimeField()
    releases = models.PositiveIntegerField(default=0, help_text="Releases rebuilt by the last run.")

    def __str__(self) -> str:
        return f"Metrics refreshed through {self.refreshed_through:%Y-%m-%d %H:%M}"
