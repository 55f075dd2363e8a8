"""Pipeline integrations: configuring GitHub and GitLab, mapping repositories to services, and
linking a run that waits on Signoff to the release it deploys.

Every configuration change and every authenticated event is written to the ledger inside the
transaction that records it (secrets masked). Unauthenticated requests never get this far.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.exceptions import InvalidRequest
from approvals.pipelines import answers, channels, opening
from approvals.pipelines.events import REPOSITORY, RunEvent
from approvals.pipelines.matching import find_environment, find_release
from approvals.pipelines.models import (
    InboundDelivery,
    PipelineIntegration,
    PipelineWait,
    Provider,
    RepositoryMapping,
)
from changes.incidents.models import mask_secret
from governance.ledger import services as ledger
from governance.models import Service

MIN_SECRET_LENGTH = 16
HOOK_PROVIDERS = (Provider.GITHUB, Provider.GITLAB)


@dataclass(frozen=True)
class Outcome:
    """What became of one event, as the webhook answers it."""

    status: str
    message: str
    release_id: int | None = None
    answer: str = ""

    @property
    def http_status(self) -> int:
        return 202 if self.status == "unlinked" else 200

    def as_dict(self) -> dict:
        body = {"status": self.status, "message": self.message}
        if self.release_id is not None:
            body["release"] = self.release_id
        if self.answer:
            body["answer"] = self.answer
        return body


def configure_integration(
    *,
    provider: str,
    actor: str,
    secret: str | None = None,
    api_url: str | None = None,
    api_token: str | None = None,
    open_releases: bool | None = None,
    reason: str = "",
) -> PipelineIntegration:
    """Set what was given of `provider`'s webhook secret (GitHub's HMAC key, GitLab's token,
    kept as its SHA-256 only), API URL, API token (GitLab) and release opening. Ledgered, masked."""
    _validate_configuration(provider, secret, api_url, api_token, open_releases)
    with transaction.atomic():
        integration, _ = PipelineIntegration.objects.select_for_update().get_or_create(
            provider=provider
        )
        before = masked_configuration(integration)
        if secret is not None:
            if provider == Provider.GITHUB:
                integration.webhook_secret = secret
            else:
                integration.token_digest = hashlib.sha256(secret.encode()).hexdigest()
            integration.secret_hint = secret[-4:]
        if api_url is not None:
            integration.api_url = api_url.rstrip("/")
        if api_token is not None:
            integration.api_token = api_token
        if open_releases is not None:
            integration.open_releases = open_releases
        integration.updated_at = timezone.now()
        integration.save()
        ledger.append(
            kind="integration.configured",
            subject=f"integration:{provider}",
            actor=actor,
            payload={
                "provider": provider,
                **masked_configuration(integration),
                "before": before,
                **({"reason": reason} if reason else {}),
            },
        )
    return integration


def masked_configuration(integration: PipelineIntegration) -> dict:
    """What may be shown of a configuration: secrets as their last four characters."""
    has_secret = bool(integration.webhook_secret or integration.token_digest)
    return {
        "secret": f"…{integration.secret_hint}" if has_secret else "",
        "api_url": integration.api_url,
        "api_token": mask_secret(integration.api_token) if integration.api_token else "",
        "open_releases": integration.open_releases,
    }


def _validate_configuration(provider, secret, api_url, api_token, open_releases) -> None:
    if provider not in HOOK_PROVIDERS:
        raise InvalidRequest(f"Unknown provider '{provider}': github or gitlab.")
    if all(value is None for value in (secret, api_url, api_token, open_releases)):
        raise InvalidRequest("Nothing to change: give a secret, an API URL or an API token.")
    errors = {}
    if secret is not None and (
        len(secret) < MIN_SECRET_LENGTH or len(secret) > 200 or not _printable(secret)
    ):
        errors["secret"] = [f"{MIN_SECRET_LENGTH} to 200 printable characters, no spaces."]
    if api_url is not None and not _http_url(api_url):
        errors["api_url"] = ["An http(s) URL with a host, at most 300 characters."]
    if api_token is not None and not (0 < len(api_token) <= 300 and _printable(api_token)):
        errors["api_token"] = ["1 to 300 printable characters, no spaces."]
    if errors:
        raise InvalidRequest(" ".join(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)


def _printable(value: str) -> bool:
    return value.isprintable() and not any(c.isspace() for c in value)


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return (
        len(value) <= 300
        and parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and _printable(value)
    )


def map_repository(
    *, provider: str, repository: str, service: Service, actor: str, reason: str = ""
) -> RepositoryMapping:
    """Say which service a repository builds (replacing an earlier mapping). Ledgered."""
    repository = repository.strip().strip("/")
    if provider not in HOOK_PROVIDERS:
        raise InvalidRequest(f"Unknown provider '{provider}': github or gitlab.")
    dots = any(part in (".", "..") for part in repository.split("/"))
    if len(repository) > 255 or not REPOSITORY.match(repository) or dots:
        message = "owner/repo (GitLab: group/subgroup/project), as the provider names it."
        raise InvalidRequest(f"repository: {message}", fields={"repository": [message]})
    with transaction.atomic():
        mapping = (
            RepositoryMapping.objects.select_for_update()
            .filter(provider=provider, repository__iexact=repository)
            .select_related("service")
            .first()
        )
        previous = mapping.service.slug if mapping else None
        if mapping is None:
            mapping = RepositoryMapping(provider=provider, repository=repository)
        mapping.service = service
        mapping.save()
        ledger.append(
            kind="integration.mapped",
            subject=f"integration:{provider}",
            actor=actor,
            payload={
                "repository": mapping.repository,
                "service": service.slug,
                "before": previous,
                **({"reason": reason} if reason else {}),
            },
        )
    return mapping


def receive_run(*, event: RunEvent, delivery_id: str, now: datetime | None = None) -> Outcome:
    """Link a waiting run to its release (opening one when the integration allows and an
    artifact is known) and answer it at once when the gate has decided.

    A linked delivery is remembered, so its redelivery changes nothing. One that linked nothing
    is not: once the repository is mapped (or the release requested), redelivering it from the
    provider's webhook page links the run, which is still waiting there.
    """
    now = now or timezone.now()
    delivery_id = delivery_id[:200]
    seen = InboundDelivery.objects.filter(provider=event.provider, delivery_id=delivery_id)
    if delivery_id and seen.exists():
        return Outcome("duplicate", "Already received; nothing changed.")
    try:
        # No ledger.deferred() here: opening a release runs its own, which must stay the
        # outermost so that a refused opening leaves none of its entries behind.
        with transaction.atomic():
            outcome = _link(event, now)
            if delivery_id and outcome.status == "linked":
                InboundDelivery.objects.create(
                    provider=event.provider, delivery_id=delivery_id, received_at=now
                )
            return outcome
    except IntegrityError:
        # The same delivery (or the same waiting deployment) was recorded first elsewhere.
        return Outcome("duplicate", "Already received; nothing changed.")


def _link(event: RunEvent, now: datetime) -> Outcome:
    if PipelineWait.objects.filter(provider=event.provider, external_id=event.external_id).exists():
        return Outcome("duplicate", "This run is already linked; nothing changed.")
    mapping = (
        RepositoryMapping.objects.filter(
            provider=event.provider, repository__iexact=event.repository
        )
        .select_related("service")
        .first()
    )
    if mapping is None:
        return _unlinked(event, f"No service is mapped to {event.repository}; map it first.")
    environment = find_environment(event.environment_name)
    if environment is None:
        return _unlinked(event, f"No Signoff environment is named '{event.environment_name}'.")
    release = find_release(event, mapping.service, environment)
    opened = False
    if release is None:
        release, why = opening.open_release(event, mapping.service, environment)
        if release is None:
            return _unlinked(event, why)
        opened = True
    wait = PipelineWait.objects.create(
        provider=event.provider,
        release=release,
        external_id=event.external_id,
        environment_name=event.environment_name,
        run_url=event.run_url,
        sha=event.sha,
        callback=event.callback,
        created_at=now,
    )
    ledger.append(
        kind="pipeline.linked",
        subject=f"release:{release.pk}",
        actor=f"{event.provider}:{event.sender}" if event.sender else event.provider,
        payload={**event.ledger_payload(), "opened": opened},
    )
    answers.answer_release(release.pk, now)
    wait.refresh_from_db(fields=["answer"])
    verb = "opened" if opened else "linked to"
    return Outcome("linked", f"Run {verb} release #{release.pk}.", release.pk, wait.answer)


def _unlinked(event: RunEvent, why: str) -> Outcome:
    ledger.append(
        kind="pipeline.unlinked",
        subject=f"integration:{event.provider}",
        actor=f"{event.provider}:{event.sender}" if event.sender else event.provider,
        payload={**event.ledger_payload(), "reason": why},
    )
    return Outcome("unlinked", f"{why} The run keeps waiting; nothing was linked.")


def callback_allowed(event: RunEvent, integration: PipelineIntegration) -> bool:
    """Whether the run's callback lies under the configured API URL (GitHub): a forged URL
    elsewhere would be handed the App's installation token."""
    if event.provider != Provider.GITHUB:
        return True
    return channels.under_api_url(event.callback.get("url", ""), integration.api_url)
