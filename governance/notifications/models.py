"""Notifications to people, written in the same transaction as their cause (an outbox)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.people.models import User


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
    """An event for the organisation's other systems (monitoring, chat, SIEM), written in the
    transaction that causes it and POSTed by a Celery task to every configured endpoint, signed
    and retried, so a receiver outage loses nothing."""

    kind = models.CharField(max_length=60, db_index=True)
    subject = models.CharField(max_length=100, help_text="What it is about, e.g. release:12.")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(delivered_at__isnull=True),
                name="outbound_event_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}"
