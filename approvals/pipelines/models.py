"""Pipelines that ask through their own hooks: GitHub deployment protection rules, GitLab
deployment approvals and Azure DevOps checks in callback mode. Signoff links each waiting run to
a release and answers it when the gate decides."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from governance.models import Service


class Provider(models.TextChoices):
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    AZURE = "azure", "Azure DevOps"


class PipelineIntegration(models.Model):
    """How Signoff talks to one provider: the secret its webhooks carry and where its API is.

    GitHub's webhook secret is kept as given (the HMAC needs it); GitLab's token only as a
    SHA-256 digest (it is compared, never recomputed). Not registered with django-auditlog: the
    ledger records each change, secrets masked.
    """

    provider = models.CharField(max_length=10, choices=Provider.choices, unique=True)
    webhook_secret = models.CharField(max_length=200, blank=True, help_text="GitHub: HMAC key.")
    token_digest = models.CharField(max_length=64, blank=True, help_text="GitLab: SHA-256, hex.")
    secret_hint = models.CharField(max_length=8, blank=True, help_text="The secret's last four.")
    api_url = models.URLField(max_length=300, blank=True)
    api_token = models.CharField(
        max_length=300, blank=True, help_text="GitLab: the token decisions are posted with."
    )
    open_releases = models.BooleanField(
        default=False,
        help_text="Open a release for an event no release matches (when the policy allows).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.get_provider_display()


class RepositoryMapping(models.Model):
    """Which catalogue service a repository (GitHub owner/repo, GitLab group/project) builds."""

    provider = models.CharField(max_length=10, choices=Provider.choices)
    repository = models.CharField(max_length=255, help_text="owner/repo, as the provider says.")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["provider", "repository"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "repository"], name="unique_repository_mapping"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.repository} → {self.service}"


class InboundDelivery(models.Model):
    """A webhook delivery already handled, so that a redelivery or a replay changes nothing."""

    provider = models.CharField(max_length=10, choices=Provider.choices)
    delivery_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "delivery_id"], name="unique_pipeline_delivery"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.delivery_id}"


class PipelineWait(models.Model):
    """A pipeline run waiting on a release's gate, and where its answer goes.

    `callback` holds what the provider needs to hear back (GitHub: deployment_callback_url,
    installation id, environment; GitLab: project and deployment ids; Azure DevOps: plan URL,
    project, hub, plan, job, timeline and task instance ids). `credentials` holds a per-run
    secret (Azure's job AuthToken), never shown.
    """

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting for the gate"
        ANSWERED = "answered", "Answered"

    provider = models.CharField(max_length=10, choices=Provider.choices)
    release = models.ForeignKey(
        "approvals.Release", on_delete=models.CASCADE, related_name="pipeline_waits"
    )
    external_id = models.CharField(
        max_length=200, help_text="The provider's id for the waiting run or deployment."
    )
    environment_name = models.CharField(max_length=255, blank=True)
    run_url = models.URLField(max_length=500, blank=True)
    sha = models.CharField(max_length=64, blank=True)
    callback = models.JSONField(default=dict)
    credentials = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    answer = models.CharField(max_length=10, blank=True, help_text="approved or rejected.")
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "external_id"], name="unique_pipeline_wait")
        ]
        indexes = [
            models.Index(
                fields=["release"],
                condition=models.Q(state="waiting"),
                name="pipeline_wait_waiting_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.external_id} ({self.state})"
