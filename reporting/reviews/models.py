"""The quarterly review and workflow feedback (imported by reporting/models.py).

A quarterly review lists, as they stood when it started, the acts that went around the normal
approval path in one quarter: policy exceptions (freeze overrides), emergency bypasses, overdue
post-mortems and unapproved deployments. Administrators and CAB members record an outcome for
each. Workflow feedback is a release requester's verdict on the approval workflow they went
through, counted per policy rule on the feedback page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from dateutil.relativedelta import relativedelta
from django.db import models
from django.utils import timezone

from governance.models import Service, User


def quarter_label(first_day: date) -> str:
    """ "2026 Q3" for the quarter starting on `first_day`."""
    return f"{first_day:%Y} Q{(first_day.month - 1) // 3 + 1}"


class QuarterlyReview(models.Model):
    """One quarter's review; at most one per quarter, so starting it twice finds the same one."""

    quarter_start = models.DateField(unique=True, help_text="First day of the quarter reviewed.")
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closing_note = models.TextField(blank=True)
    left_open = models.JSONField(
        default=list, blank=True, help_text="Items still without an outcome when it was closed."
    )

    class Meta:
        ordering = ["-quarter_start"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return f"Quarterly review {quarter_label(self.quarter_start)}"

    @property
    def period(self) -> tuple[datetime, datetime]:
        """The quarter as UTC instants [start, end): the ledger and the records keep UTC."""
        start = datetime.combine(self.quarter_start, time.min, UTC)
        return start, start + relativedelta(months=3)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


class QuarterlyReviewItem(models.Model):
    """One act of the quarter as it stood when the review started, with the outcome recorded."""

    class Kind(models.TextChoices):
        FREEZE_OVERRIDE = "freeze_override", "Policy exception (freeze override)"
        EMERGENCY = "emergency", "Emergency bypass"
        LATE_POST_MORTEM = "late_post_mortem", "Overdue post-mortem"
        UNAPPROVED_DEPLOYMENT = "unapproved_deployment", "Unapproved deployment"

    class Outcome(models.TextChoices):
        PENDING = "pending", "To review"
        ACCEPTED = "accepted", "Accepted"
        FOLLOW_UP = "follow_up", "Follow-up required"
        CONTROL_CHANGED = "control_changed", "Control changed"

    # Outcomes that promise further work or record a changed control must say which.
    NOTE_REQUIRED = (Outcome.FOLLOW_UP, Outcome.CONTROL_CHANGED)

    review = models.ForeignKey(QuarterlyReview, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=25, choices=Kind.choices)
    # The row it is about (override, emergency, post-mortem or release), by id: the snapshot
    # stays readable whatever happens to that row later.
    source_id = models.PositiveBigIntegerField()
    service = models.ForeignKey(
        Service, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    occurred_at = models.DateTimeField()
    url = models.CharField(max_length=300, blank=True, help_text="Path of the page it is about.")
    involved = models.JSONField(
        default=list, help_text="Ids of the people whose act it is: they record no outcome on it."
    )
    involved_names = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["review", "kind", "occurred_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "kind", "source_id"], name="one_quarterly_item_per_act"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title} ({self.outcome})"

    @property
    def is_pending(self) -> bool:
        return self.outcome == self.Outcome.PENDING

    @property
    def label(self) -> str:
        """How the item is named where several are listed (a closing note, the ledger)."""
        return f"{self.get_kind_display()}: {self.title}"


class WorkflowFeedback(models.Model):
    """A requester's rating of the approval workflow one release went through; one per release,
    which its requester may change (each change is a new ledger entry)."""

    class Rating(models.TextChoices):
        USEFUL = "useful", "Useful"
        NOISE = "noise", "Noise"

    # The approvals app never reads feedback: no reverse accessor on the release.
    release = models.OneToOneField("approvals.Release", on_delete=models.CASCADE, related_name="+")
    rated_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    rating = models.CharField(max_length=10, choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} for release {self.release_id}"
