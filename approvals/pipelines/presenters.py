"""What the release page shows about the pipeline runs waiting on its gate."""

from __future__ import annotations

from approvals.models import Release
from approvals.pipelines.models import PipelineWait, Provider

MAX_RUNS = 50
ANSWER_BADGES = {"approved": "text-bg-success", "rejected": "text-bg-danger"}


def pipeline_panel(release: Release) -> dict:
    """The pipeline runs linked to the release and what they were answered (one query)."""
    waits = PipelineWait.objects.filter(release_id=release.pk).order_by("-created_at", "-pk")
    rows = [
        {
            "provider": Provider(wait.provider).label,
            "environment": wait.environment_name,
            "run_url": wait.run_url,
            "external_id": wait.external_id,
            "sha": wait.sha[:12],
            "waiting": wait.state == PipelineWait.State.WAITING,
            "answer": wait.answer,
            "badge": ANSWER_BADGES.get(wait.answer, "text-bg-secondary"),
            "answered_at": wait.answered_at,
            "linked_at": wait.created_at,
        }
        for wait in waits.only(
            "provider",
            "environment_name",
            "run_url",
            "external_id",
            "sha",
            "state",
            "answer",
            "answered_at",
            "created_at",
        )[:MAX_RUNS]
    ]
    return {"runs": rows} if rows else {}
