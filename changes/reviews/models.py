"""Post-implementation reviews and post-mortems: what happened, why, and who does what next.

Opened by Signoff, never by hand: when an approved release's deployment fails or is rolled
back, when a deployment was not approved, and for every emergency change (a post-mortem that
must validate the emergency's justification). A reviewer from the service's owners completes
one; overdue ones go to the CAB.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import Service, User


class ReviewQuerySet(models.QuerySet):
    def open(self) -> ReviewQuerySet:
        return self.filter(status=Review.Status.OPEN)

    def overdue(self, now) -> ReviewQuerySet:
        return self.open().filter(due_at__lte=now)


class Review(models.Model):
    """A post-implementation review (PIR) or an emergency's post-mortem."""

    class Kind(models.TextChoices):
        POST_IMPLEMENTATION = "post_implementation", "Post-implementation review"
        POST_MORTEM = "post_mortem", "Post-mortem"

    class Trigger(models.TextChoices):
        DEPLOYMENT_FAILED = "deployment_failed", "Deployment failed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        UNAPPROVED_DEPLOYMENT = "unapproved_deployment", "Unapproved deployment"
        EMERGENCY = "emergency", "Emergency change"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    trigger = models.CharField(max_length=25, choices=Trigger.choices)
    change = models.ForeignKey(
        "changes.ChangeRecord", on_delete=models.PROTECT, related_name="reviews"
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="reviews")
    release_id = models.PositiveIntegerField(
        null=True, blank=True, db_index=True, help_text="The release it is about, if one."
    )
    summary = models.TextField(help_text="Why Signoff opened it, in words.")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    opened_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    what_happened = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    justification_valid = models.BooleanField(
        null=True, blank=True, help_text="Post-mortems: whether the emergency was justified."
    )
    declared_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who declared the emergency the review is about: they never complete it.",
    )
    completed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    objects = ReviewQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # One review per release and cause: a second failure report opens nothing new.
            models.UniqueConstraint(
                fields=["release_id", "kind", "trigger"],
                condition=Q(release_id__isnull=False),
                name="one_review_per_release_and_cause",
            ),
            models.UniqueConstraint(
                fields=["change", "kind"],
                condition=Q(kind="post_mortem"),
                name="one_post_mortem_per_change",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.change.ref}"

    @property
    def is_overdue(self) -> bool:
        """Open and past its due time (pages show it; the sweep escalates it)."""
        return self.status == self.Status.OPEN and self.due_at <= timezone.now()

    @property
    def release_path(self) -> str:
        """The release's page, as a path: this app may not import the approvals app's URLs."""
        return f"/approvals/releases/{self.release_id}/" if self.release_id else ""


class ReviewAction(models.Model):
    """A follow-up action agreed in a review, with an owner and a due date."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="actions")
    description = models.CharField(max_length=300)
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="review_actions")
    due_on = models.DateField()
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_on", "pk"]

    def __str__(self) -> str:
        return self.description
