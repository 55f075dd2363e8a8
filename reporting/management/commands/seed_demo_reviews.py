"""The demo's quarterly review and workflow feedback (idempotent). Run after seed_demo.

Requesters rate the workflows of the demo releases that have ended. Last quarter gets a little
history, written as rows dated then (two emergencies with their post-mortems, one late and one
still open, and a release deployed while its request was expiring), and its review is started
with two outcomes recorded, so the review page opens on a review in progress.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, Deployment, Release
from changes.models import ChangeRecord
from changes.reviews.models import Review
from governance.models import Environment, Service, User
from reporting.reviews import services
from reporting.reviews.models import QuarterlyReviewItem, WorkflowFeedback

# change ref, environment, rating, comment (the requester is the release's own)
RATINGS = [
    ("CHG0031301", "production", "noise", "Four approvers and the CAB for a batching tweak."),
    ("CHG0031288", "staging", "useful", "Bob caught the flaky acquirer tests before prod."),
    ("CHG0031250", "production", "noise", "Expired waiting for the CAB over a weekend."),
    ("CHG0031333", "production", "useful", "The fast path worked: out in minutes."),
    ("CHG0031290", "staging", "useful", ""),
    ("CHG0031320", "staging", "noise", "A synonym list waited half a day for one approver."),
]

# ref, service, declared by, days into the quarter, post-mortem completed days after due
EMERGENCIES = [
    ("CHG0030911", "checkout-service", "heidi", 20, 3),
    ("CHG0030957", "payments-ledger", "dave", 52, None),
]
UNAPPROVED = ("CHG0030980", "search-api", "staging", "5.1.0", "ivan", 70)


class Command(BaseCommand):
    help = "Give the demo workflow ratings and last quarter's review in progress."

    def handle(self, *args, **options) -> None:
        rated = sum(self._rate(*rating) for rating in RATINGS)
        quarter = services.previous_quarter(timezone.localdate())
        start = datetime.combine(quarter, time(9, 0), timezone.get_current_timezone())
        with transaction.atomic():
            for emergency in EMERGENCIES:
                self._emergency(start, *emergency)
            self._unapproved(start, *UNAPPROVED)
        review, created = services.start_quarterly_review(
            actor=User.objects.get(username="admin"), quarter=quarter
        )
        if created:
            self._outcomes(review)
        self.stdout.write(f"Demo reviews: {rated} new ratings, {review.name}.")

    def _rate(self, ref: str, environment: str, rating: str, comment: str) -> int:
        release = Release.objects.get(change__ref=ref, environment__slug=environment)
        if WorkflowFeedback.objects.filter(release=release).exists():
            return 0
        requester = User.objects.get(pk=services.requester_of(release))
        services.give_feedback(release=release, rating=rating, comment=comment, actor=requester)
        return 1

    def _emergency(self, start, ref, service, who, day, late) -> None:
        if ChangeRecord.objects.filter(ref=ref).exists():
            return
        person = User.objects.get(username=who)
        change = ChangeRecord.objects.create(
            ref=ref, type="emergency", title="Hotfix after a failed release", author=person
        )
        declared = start + timedelta(days=day)
        emergency = EmergencyException.objects.create(
            change=change,
            service=Service.objects.get(slug=service),
            declared_by=person,
            justification="Customers could not complete payments.",
            outage="Error rate above 20% on the payment step.",
            starts_at=declared,
            ends_at=declared + timedelta(hours=4),
        )
        due = declared + timedelta(days=5)
        Review.objects.create(
            kind=Review.Kind.POST_MORTEM,
            trigger=Review.Trigger.EMERGENCY,
            change=change,
            service=emergency.service,
            summary=f"Post-mortem of the emergency {ref}",
            opened_at=declared,
            due_at=due,
            status=Review.Status.OPEN if late is None else Review.Status.COMPLETED,
            completed_at=None if late is None else due + timedelta(days=late),
            completed_by=None if late is None else person,
        )

    def _unapproved(self, start, ref, service, environment, version, who, day) -> None:
        """A release whose request expired undecided, deployed by its pipeline regardless."""
        if ChangeRecord.objects.filter(ref=ref).exists():
            return
        person, bot = User.objects.get(username=who), User.objects.get(username="ci-bot")
        requested = start + timedelta(days=day)
        change = ChangeRecord.objects.create(ref=ref, title="Ranking tweak", author=person)
        release = Release.objects.create(
            service=Service.objects.get(slug=service),
            environment=Environment.objects.get(slug=environment),
            version=version,
            image=f"registry.example.com/{service}",
            digest="sha256:" + "5" * 64,
            change=change,
            requested_by=bot,
            triggered_by=person,
            created_at=requested,
            unapproved_deployment_at=requested + timedelta(hours=3),
        )
        ApprovalRequest.objects.create(
            release=release,
            status=ApprovalRequest.Status.EXPIRED,
            requested_at=requested,
            expires_at=requested + timedelta(days=1),
        )
        Deployment.objects.create(
            release=release,
            status=Deployment.Status.SUCCEEDED,
            reported_by=bot,
            digest=release.digest,
            gate_status="pending",
            approved=False,
            created_at=requested + timedelta(hours=3),
        )

    def _outcomes(self, review) -> None:
        carol = User.objects.get(username="carol")
        items = review.items.filter(kind=QuarterlyReviewItem.Kind.EMERGENCY).order_by("pk")
        for item, outcome, note in zip(
            items,
            ("accepted", "follow_up"),
            ("Outage confirmed by the incident record.", "Ledger owners to add a canary stage."),
            strict=False,
        ):
            services.record_outcome(item=item, outcome=outcome, note=note, actor=carol)
