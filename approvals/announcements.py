"""Release events for other systems and teams' subscriptions (through the outbox).

Each carries what a person acting on it needs: a one-line summary, the service, version,
environment and change, the reasons where there are some, and a link to the release page,
where the decision is taken.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db import transaction
from django.urls import reverse

from approvals.models import Release
from governance.notifications.events import EventSpec, publish_events


def announce(release: Release, kind: str, summary: str, **details) -> None:
    """Publish `release.<kind>` for `release`; call inside the transaction that causes it."""
    publish_events([release_event(release, kind, summary, **details)])


def release_event(release: Release, kind: str, summary: str, **details) -> EventSpec:
    """The event `announce` publishes; a sweep collects many and publishes them at once."""
    return EventSpec(
        kind=f"release.{kind}",
        subject=f"release:{release.pk}",
        service_id=release.service_id,
        payload={
            "summary": summary,
            "release": release.pk,
            "service": release.service.slug,
            "version": release.version,
            "environment": release.environment.slug,
            "digest": release.digest,
            "change": release.change.ref,
            "url": reverse("approvals:release_detail", args=[release.pk]),
            **details,
        },
    )


BLOCKED_REMEMBERED_SECONDS = 24 * 3600


def announce_blocked(release: Release, holds: list[str]) -> bool:
    """Tell the release's teams that a freeze or an incident held it at the gate, once per
    release and set of reasons a day (pipelines ask again and again while held). Returns
    whether an event was published."""
    reasons = hashlib.sha256("\n".join(holds).encode()).hexdigest()[:16]
    # cache.add is atomic in Redis: of two workers answering at once, one announces.
    if not cache.add(f"release-blocked:{release.pk}:{reasons}", 1, BLOCKED_REMEMBERED_SECONDS):
        return False
    with transaction.atomic():
        announce(
            release,
            "blocked",
            f"Blocked at the gate: {release} ({release.change.ref}). {holds[0]}",
            reasons=holds,
        )
    return True
