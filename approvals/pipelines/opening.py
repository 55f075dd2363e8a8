"""Opening a release for a waiting run that no release matches, when the integration allows it.

A GitHub protection rule event and a GitLab deployment hook name a commit, never an image
digest, and an approval binds to a digest. So a release is opened only for a commit whose
artifact Signoff already knows: an earlier release of the same service built from that commit
(its `pipeline.sha`), typically the same build on its way to an earlier environment. The new
release asks for the same image, digest, version and change record, carries that release's
latest evidence, and is requested by the same pipeline account; the person who started the run
is recorded as its trigger, so they cannot approve it. Without such a release nothing is opened
(a digest is never guessed): the run stays waiting and the ledger says why.
"""

from __future__ import annotations

from approvals.models import Release
from approvals.pipelines.events import RunEvent
from approvals.pipelines.models import PipelineIntegration
from approvals.services.requests import ReleaseInput, request_approval
from governance.exceptions import GovernanceError
from governance.models import Environment, Service


def open_release(
    event: RunEvent, service: Service, environment: Environment
) -> tuple[Release | None, str]:
    """(the release opened for `event`, "") or (None, why none was)."""
    allowed = PipelineIntegration.objects.filter(
        provider=event.provider, open_releases=True
    ).exists()
    if not allowed:
        return None, (
            f"No release of {service.slug} to {environment.slug} names this run or commit, and "
            "this integration does not open releases."
        )
    source = _built_from(event.sha, service)
    if source is None:
        return None, (
            f"No release of {service.slug} to {environment.slug} names this run or commit, and "
            "no earlier release names the artifact (digest) built from this commit; request "
            "approval from the pipeline with pipeline.sha set."
        )
    try:
        release, _ = request_approval(
            data=_same_artifact(source, event, environment),
            actor=source.requested_by,
            idempotency_key=f"{event.provider}:{event.external_id}"[:200],
        )
    except GovernanceError as exc:
        return None, f"A release could not be opened: {exc.message}"
    return release, ""


def _built_from(sha: str, service: Service) -> Release | None:
    if not sha:
        return None
    return (
        Release.objects.filter(service=service, pipeline_sha=sha)
        .select_related("change", "requested_by")
        .prefetch_related("evidence")
        .order_by("-created_at", "-pk")
        .first()
    )


def _same_artifact(source: Release, event: RunEvent, environment: Environment) -> ReleaseInput:
    newest = {item.kind: item for item in sorted(source.evidence.all(), key=_reported)}
    return ReleaseInput(
        service=source.service,
        environment=environment,
        version=source.version,
        image=source.image,
        digest=source.digest,
        change_ref=source.change.ref,
        change_type=source.change.type,
        change_title=source.change.title,
        pipeline_provider=event.provider,
        pipeline_run_url=event.run_url,
        pipeline_sha=event.sha,
        triggered_by=event.sender,
        evidence=tuple(
            {"kind": e.kind, "status": e.status, "summary": e.summary, "url": e.url}
            for e in newest.values()
        ),
    )


def _reported(item) -> tuple:
    return (item.created_at, item.pk)
