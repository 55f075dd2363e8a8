"""Answering the pipeline runs that wait on a release, once its gate has decided.

`answer_release` is called where a request's status changes (approvals.services.transitions),
inside that transaction, and when a run is linked; the beat task (`answer_waiting`) answers runs
whose gate decided later (a freeze that ended after the approval). "approved" goes back only
while the gate says approved now; "rejected" when it says rejected (a rejection or a
withdrawal) or expired. Each run is answered once: a conditional update on its state claims
it, then the answer is queued in the outbox and ledgered in the same transaction.

This module must not import approvals.services (which calls it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.gate import GateResult, build_snapshot, evaluate_gate
from approvals.models import ApprovalRequest, Decision, Release
from approvals.pipelines import channels  # noqa: F401  (registers the outbox channels)
from approvals.pipelines.models import PipelineIntegration, PipelineWait, Provider
from governance.ledger import services as ledger
from governance.notifications import outbox

MAX_COMMENT = 1024
CLOSED = ("rejected", "expired")

# How each provider's waiting runs are answered: (wait, "approved"|"rejected", comment, now)
# -> 1 when this call answered it. Another provider's module registers its own at import.
Answerer = Callable[[PipelineWait, str, str, datetime], int]
_ANSWERERS: dict[str, Answerer] = {}


def register_answerer(provider: str, answerer: Answerer) -> None:
    """Have `answer_release` answer `provider`'s waiting runs with `answerer`."""
    _ANSWERERS[provider] = answerer


def answer_pipelines(release: Release, now: datetime | None = None) -> int:
    """Answer `release`'s waiting runs if its gate has decided; how many were answered."""
    return answer_release(release.pk, now)


def answer_release(release_id: int, now: datetime | None = None) -> int:
    """As `answer_pipelines`, by id. Costs one query when nothing waits on the release."""
    waits = list(
        PipelineWait.objects.filter(
            release_id=release_id,
            state=PipelineWait.State.WAITING,
            provider__in=list(_ANSWERERS),
        )
    )
    if not waits:
        return 0
    now = now or timezone.now()
    verdict = decide(release_id, now)
    if verdict is None:
        return 0
    answer, comment = verdict
    return sum(_ANSWERERS[wait.provider](wait, answer, comment, now) for wait in waits)


SWEEP_BATCH = 200


def answer_waiting(now: datetime | None = None) -> int:
    """Answer the waiting runs whose gate decided after their request did (a freeze that
    ended, an approval that expired); run by beat every minute. One transaction per release,
    so one that cannot be answered never holds back the others."""
    now = now or timezone.now()
    closed = [s for s in ApprovalRequest.Status if s != ApprovalRequest.Status.PENDING]
    # Pending requests are answered by their decisions, unless their deadline has passed.
    decided = Q(release__approval__status__in=closed) | Q(release__approval__expires_at__lte=now)
    waiting = PipelineWait.objects.filter(
        decided, state=PipelineWait.State.WAITING, provider__in=list(_ANSWERERS)
    )
    answered, last = 0, 0
    while True:
        batch = list(
            waiting.filter(release_id__gt=last)
            .order_by("release_id")
            .values_list("release_id", flat=True)
            .distinct()[:SWEEP_BATCH]
        )
        for release_id in batch:
            with transaction.atomic():
                answered += answer_release(release_id, now)
        if len(batch) < SWEEP_BATCH:
            return answered
        last = batch[-1]


def decide(release_id: int, now: datetime) -> tuple[str, str] | None:
    """("approved" | "rejected", the comment) once the gate has decided, else None.

    The snapshot is rebuilt here: callers change decisions and statuses before they refresh it.
    """
    release = Release.objects.for_gate().get(pk=release_id)
    approval = release.approval
    approval.gate_snapshot = build_snapshot(approval)
    result = evaluate_gate(release, now=now)
    if result.status == "approved":
        return "approved", _approved_comment(release, approval)
    if result.status in CLOSED:
        return "rejected", _closed_comment(release, result)
    return None


def _approved_comment(release: Release, approval: ApprovalRequest) -> str:
    decisions = (
        Decision.objects.filter(request_id=approval.pk, verdict=Decision.Verdict.APPROVE)
        .select_related("approver", "on_behalf_of", "stage")
        .order_by("created_at", "pk")
    )
    parts = [
        f"{d.stage.name}: {d.approver.username}"
        + (f" for {d.on_behalf_of.username}" if d.on_behalf_of_id else "")
        + f" ({d.rationale.strip()})"
        for d in decisions
    ]
    standard = (approval.plan or {}).get("standard_change") or {}
    if standard:
        parts.append(f"standard change {standard.get('name') or standard.get('id')}")
    who = "; ".join(parts) if parts else "the policy (no approval stage applies)"
    return _clip(f"Approved in Signoff, release #{release.pk} ({release.digest}), by {who}.")


def _closed_comment(release: Release, result: GateResult) -> str:
    reasons = " ".join(result.reasons) or "No reason was recorded."
    return _clip(f"Signoff release #{release.pk} is {result.status}: {reasons}")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 1] + "…"


def _answer(wait: PipelineWait, answer: str, comment: str, now: datetime) -> int:
    claimed = PipelineWait.objects.filter(pk=wait.pk, state=PipelineWait.State.WAITING).update(
        state=PipelineWait.State.ANSWERED, answer=answer, answered_at=now
    )
    if not claimed:
        return 0  # answered meanwhile by another transaction
    url, payload, credentials = _call(wait, answer, comment)
    delivery = outbox.enqueue(
        channel=wait.provider,
        kind=f"pipeline.{answer}",
        url=url,
        payload=payload,
        subject=f"release:{wait.release_id}",
        credentials=credentials,
    )
    ledger.append(
        kind="pipeline.answer_queued",
        subject=f"release:{wait.release_id}",
        actor="system",
        payload={
            "provider": wait.provider,
            "external_id": wait.external_id,
            "environment": wait.environment_name,
            "answer": answer,
            "comment": comment,
            "delivery": str(delivery.delivery_id),
        },
    )
    return 1


def _call(wait: PipelineWait, answer: str, comment: str) -> tuple[str, dict, dict]:
    """The outbox row's URL, body and credentials for the provider."""
    if wait.provider == Provider.GITHUB:
        body = {
            "environment_name": wait.callback.get("environment_name", wait.environment_name),
            "state": answer,
            "comment": comment,
        }
        return wait.callback["url"], body, {"installation_id": wait.callback["installation_id"]}
    integration = PipelineIntegration.objects.filter(provider=Provider.GITLAB).first()
    api_url = integration.api_url if integration else ""
    project, deployment = wait.callback["project_id"], wait.callback["deployment_id"]
    url = f"{api_url}/api/v4/projects/{project}/deployments/{deployment}/approval"
    body = {"status": answer, "comment": comment}
    # GitLab needs it when the token's user belongs to several approval rules.
    represented_as = settings.SIGNOFF_GITLAB_REPRESENTED_AS
    if represented_as:
        body["represented_as"] = represented_as
    return url, body, {}


register_answerer(Provider.GITHUB.value, _answer)
register_answerer(Provider.GITLAB.value, _answer)
