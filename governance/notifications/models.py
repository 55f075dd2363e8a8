"""Notifications to people, written in the same transaction as their cause (an outbox)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from governance.people.models import Team, User


class Notification(models.Model):
    """One message to one person; a Celery task delivers it by e-mail, with retries."""

    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    url = models.CharField(max_length=500, blank=True, help_text="Where the link lands.")
    reason = models.CharField(max_length=200, blank=True, help_text="Why this person was chosen.")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(delivered_at__isnull=True),
                name="notification_undelivered_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.subject}"


class OutboundEvent(models.Model):
    """Something the organisation's other systems hear about (a release requested, decided,
    blocked, deployed unapproved, escalated; enhanced monitoring), written in the transaction
    that causes it. Each receiver gets its own Delivery row."""

    kind = models.CharField(max_length=60, db_index=True)
    subject = models.CharField(max_length=100, help_text="What it is about, e.g. release:12.")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}"


class Subscription(models.Model):
    """A team's webhook, Slack or Microsoft Teams incoming webhook, told about events of the
    team's services."""

    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (signed JSON)"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams incoming webhook"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    url = models.URLField(max_length=500)
    secret = models.CharField(
        max_length=100, blank=True, help_text="Signs webhook bodies (X-Signoff-Signature)."
    )
    events = models.JSONField(default=list, help_text="Event kinds it receives.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "name"]

    def __str__(self) -> str:
        return f"{self.team}: {self.name} ({self.get_channel_display()})"


class Delivery(models.Model):
    """One outbound HTTP call to one receiver (the outbox): a subscriber's webhook, a chat
    message, a pipeline's callback, a rollback hook. A Celery task sends it with retries and
    exponential backoff; the receiver deduplicates on `delivery_id`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(
        max_length=20, help_text="How it is sent: webhook, slack, teams, github, gitlab, azure."
    )
    kind = models.CharField(max_length=60, help_text="What it says, e.g. release.decided.")
    subject = models.CharField(max_length=100, blank=True, help_text="e.g. release:12.")
    url = models.URLField(max_length=1000)
    payload = models.JSONField(default=dict, help_text="What the channel turns into the body.")
    credentials = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per-call secrets a channel needs (a job's token); never shown.",
    )
    event = models.ForeignKey(
        OutboundEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_pending_idx",
            ),
            # /metrics counts the deliveries given up at every scrape; they are few.
            models.Index(
                fields=["status"], condition=models.Q(status="failed"), name="delivery_given_up_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.channel} ({self.status})"
