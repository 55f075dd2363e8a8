"""Which release a waiting run deploys: same service and environment, and the same run or the
same commit. The approval belongs to the release's artifact digest, so a new run of the same
commit (a re-run, a retried workflow) is answered from the same approval."""

from __future__ import annotations

import re

from django.db.models import Q

from approvals.models import Release
from approvals.pipelines.events import RunEvent
from governance.models import Environment, Service

CANDIDATES = 20


def find_environment(name: str) -> Environment | None:
    """The environment whose slug or name is `name`, ignoring case."""
    name = name.strip()
    return (
        Environment.objects.filter(Q(slug__iexact=name) | Q(name__iexact=name))
        .order_by("pk")
        .first()
    )


def find_release(event: RunEvent, service: Service, environment: Environment) -> Release | None:
    """The newest release of `service` to `environment` whose pipeline run is the event's run
    (preferred) or whose commit is the event's commit; None when neither names one."""
    same_run = _same_run_filter(event)
    same_commit = Q(pipeline_sha=event.sha) if event.sha else Q()
    if not same_run and not same_commit:
        return None
    candidates = (
        Release.objects.filter(service=service, environment=environment)
        .filter(same_run | same_commit)
        .order_by("-created_at", "-pk")
        .only("pk", "pipeline_run_url", "pipeline_sha")[:CANDIDATES]
    )
    by_run = [r for r in candidates if _names_run(r.pipeline_run_url, event)]
    if by_run:
        return by_run[0]
    return next((r for r in candidates if event.sha and r.pipeline_sha == event.sha), None)


def _same_run_filter(event: RunEvent) -> Q:
    if event.run_id:
        # Narrowed in SQL by the repository's run path, confirmed below (run 90 is not 901).
        return Q(pipeline_run_url__icontains=f"/{event.repository}/actions/runs/{event.run_id}")
    if event.run_url:
        return Q(pipeline_run_url=event.run_url)
    return Q()


def _names_run(url: str, event: RunEvent) -> bool:
    if not url:
        return False
    if event.run_id:
        path = f"/{re.escape(event.repository)}/actions/runs/{event.run_id}"
        return re.search(path + r"(?:[/?#]|$)", url, re.IGNORECASE) is not None
    return url.rstrip("/") == event.run_url.rstrip("/")
