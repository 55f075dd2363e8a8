"""Release events for other systems and teams' subscriptions (through the outbox).

Each carries what a person acting on it needs: a one-line summary, the service, version,
environment and change, the reasons where there are some, and a link to the release page,
where the decision is taken.
"""

from __future__ import annotations

from django.urls import reverse

from approvals.models import Release
from governance.notifications.events import publish_event


def announce(release: Release, kind: str, summary: str, **details) -> None:
    """Publish `release.<kind>` for `release`; call inside the transaction that causes it."""
    publish_event(
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
