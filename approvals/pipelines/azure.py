"""Azure DevOps "Invoke REST API" checks in callback mode.

The check calls Signoff when a stage reaches a protected environment, with the job's callback
details in its headers (PlanUrl, ProjectId, HubName, PlanId, JobId, TimelineId, TaskInstanceId,
AuthToken: the check's documented default headers). Signoff acknowledges at once and keeps a
PipelineWait; when the release's gate decides, the answer goes back through the outbox as the
`TaskCompleted` event of the job's plan:

    POST {PlanUrl}{ProjectId}/_apis/distributedtask/hubs/{HubName}/plans/{PlanId}/events
         ?api-version=2.0-preview.1
    Authorization: Basic base64(":" + AuthToken)
    {"name": "TaskCompleted", "taskId": TaskInstanceId, "jobId": JobId, "result": "succeeded"}

Basic with an empty user name and the job's token as the password is how Microsoft's own
check samples (VssBasicCredential(string.Empty, authToken)) send it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction

from approvals.exceptions import InvalidRequest
from approvals.models import Release
from approvals.pipelines import answers
from approvals.pipelines.models import PipelineWait, Provider
from governance.ledger import services as ledger
from governance.notifications import outbox
from governance.notifications.models import Delivery
from governance.people.models import User

CHANNEL = "azure"
EVENTS_API_VERSION = "2.0-preview.1"
# What Azure DevOps is told for each answer (an expired gate is answered "rejected").
RESULTS = {"approved": "succeeded", "rejected": "failed", "expired": "failed"}
HEADER_FIELDS = {
    "plan_url": "PlanUrl",
    "project_id": "ProjectId",
    "hub_name": "HubName",
    "plan_id": "PlanId",
    "job_id": "JobId",
    "timeline_id": "TimelineId",
    "task_instance_id": "TaskInstanceId",
}
# $(system.HostType): "build" for YAML pipelines, the others for classic releases.
HUB_NAMES = ("build", "release", "deployment", "gates", "checks")
GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
EVENT_FIELDS = ("name", "taskId", "jobId", "result")
MAX_TOKEN = 4000
# Room for the events path after it within the outbox row's 1000-character URL.
MAX_URL = 500


@dataclass(frozen=True)
class AzureCheck:
    """What one callback-mode check told Signoff, validated."""

    callback: dict[str, str]
    auth_token: str

    @property
    def external_id(self) -> str:
        return f"{self.callback['plan_id']}:{self.callback['task_instance_id']}"


def parse_check(headers: dict[str, str]) -> AzureCheck:
    """The check's headers as an AzureCheck, or InvalidRequest naming every bad header."""
    values = {name: headers.get(header, "").strip() for name, header in HEADER_FIELDS.items()}
    token = headers.get("AuthToken", "").strip()
    errors: dict[str, list[str]] = {}
    for name, header in HEADER_FIELDS.items():
        if not values[name]:
            errors[header] = ["This header is required (the check's default headers carry it)."]
        elif name.endswith("_id") and not _is_uuid(values[name]):
            errors[header] = ["Must be a GUID, as $(system.*) variables give it."]
    if values["hub_name"] and values["hub_name"].lower() not in HUB_NAMES:
        errors["HubName"] = [f"Must be one of {', '.join(HUB_NAMES)} ($(system.HostType))."]
    if values["plan_url"] and (problem := plan_url_problem(values["plan_url"])):
        errors["PlanUrl"] = [problem]
    if not token or len(token) > MAX_TOKEN or not token.isprintable():
        errors["AuthToken"] = ["The job's $(system.AccessToken) is required."]
    if errors:
        raise InvalidRequest(
            "The check's callback headers are missing or malformed: "
            + ", ".join(sorted(errors))
            + ".",
            fields=errors,
        )
    values["plan_url"] = values["plan_url"].rstrip("/") + "/"
    return AzureCheck(callback=values, auth_token=token)


def plan_url_problem(url: str) -> str:
    """Why the job's token may not be sent to `url` ("" when it may): an Azure DevOps host
    (SIGNOFF_AZURE_DEVOPS_HOSTS), and no private address unless outbound calls may reach one."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "Must be an http(s) URL, as $(system.CollectionUri) gives it."
    if parts.scheme not in ("http", "https") or not host.isprintable() or len(url) > MAX_URL:
        return "Must be an http(s) URL, as $(system.CollectionUri) gives it."
    allowed = settings.SIGNOFF_AZURE_DEVOPS_HOSTS
    if not any(
        host == entry or (entry.startswith(".") and host.endswith(entry)) for entry in allowed
    ):
        return f"{host or url} is not an Azure DevOps host this Signoff answers."
    return outbox.receiver_allowed(url)


def events_url(callback: dict) -> str:
    """The plan's events endpoint, where TaskCompleted is posted."""
    project, hub, plan = (
        quote(callback[name], safe="") for name in ("project_id", "hub_name", "plan_id")
    )
    return (
        f"{callback['plan_url']}{project}/_apis/distributedtask/hubs/{hub}/plans/{plan}/events"
        f"?api-version={EVENTS_API_VERSION}"
    )


def azure_answer(wait: PipelineWait, state: str, comment: str = "") -> dict:
    """The delivery payload answering `wait`: the TaskCompleted event for `state` (approved →
    succeeded; rejected or expired → failed). `comment` stays on the outbox row for people;
    Azure DevOps is sent only the event's own fields."""
    if state not in RESULTS:
        raise ValueError(f"{state!r} does not end a wait; only {', '.join(RESULTS)} do.")
    return {
        "name": "TaskCompleted",
        "taskId": wait.callback["task_instance_id"],
        "jobId": wait.callback["job_id"],
        "result": RESULTS[state],
        "comment": comment,
        "release": wait.release_id,
    }


def register_check(*, release: Release, actor: User, check: AzureCheck) -> PipelineWait:
    """Keep a waiting Azure DevOps check for `release`, and answer it at once when the gate
    has already decided. A check sent again (same plan and task) changes nothing. Ledgered."""
    with transaction.atomic():
        existing = PipelineWait.objects.filter(
            provider=Provider.AZURE, external_id=check.external_id
        ).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                wait = PipelineWait.objects.create(
                    provider=Provider.AZURE,
                    release=release,
                    external_id=check.external_id,
                    environment_name=release.environment.slug,
                    run_url=release.pipeline_run_url,
                    callback=check.callback,
                    credentials={"auth_token": check.auth_token},
                )
        except IntegrityError:  # the same check, sent twice at once: the other one keeps it
            return PipelineWait.objects.get(provider=Provider.AZURE, external_id=check.external_id)
        ledger.append(
            kind="pipeline.wait_registered",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "provider": Provider.AZURE,
                "external_id": wait.external_id,
                "environment": wait.environment_name,
            },
        )
        # A gate that has already decided is answered now: no decision is coming to do it.
        answers.answer_release(release.pk)
    wait.refresh_from_db()
    return wait


def answer_wait(wait: PipelineWait, answer: str, comment: str, now: datetime) -> int:
    """Answer one waiting check ("approved" or "rejected"): the TaskCompleted event goes into
    the outbox, ledgered. Returns 1, or 0 when the wait had already been answered (only the
    first answer counts). Registered with approvals.pipelines.answers for provider "azure"."""
    with transaction.atomic():
        # The conditional update claims the wait: two deciders racing answer it once. The job's
        # token moves to the outbox row that needs it and is kept nowhere else.
        claimed = PipelineWait.objects.filter(pk=wait.pk, state=PipelineWait.State.WAITING).update(
            state=PipelineWait.State.ANSWERED, answer=answer, answered_at=now, credentials={}
        )
        if not claimed:
            return 0
        delivery = outbox.enqueue(
            channel=CHANNEL,
            kind=f"pipeline.{answer}",
            url=events_url(wait.callback),
            payload=azure_answer(wait, answer, comment),
            subject=f"release:{wait.release_id}",
            credentials=dict(wait.credentials),
        )
        ledger.append(
            kind="pipeline.answer_queued",
            subject=f"release:{wait.release_id}",
            actor="system",
            payload={
                "provider": Provider.AZURE,
                "external_id": wait.external_id,
                "environment": wait.environment_name,
                "answer": answer,
                "comment": comment,
                "delivery": str(delivery.delivery_id),
            },
        )
    return 1


def _is_uuid(value: str) -> bool:
    return bool(GUID.fullmatch(value))


def _send_task_completed(delivery: Delivery, session: requests.Session) -> outbox.OutboundRequest:
    """The outbox channel: the event's own fields as JSON, with the job's token as Basic auth."""
    token = delivery.credentials.get("auth_token", "")
    if not token:
        raise outbox.DeliveryRefused("the job's AuthToken is missing")
    # The plan URL came from the check: it is checked again at each send, as subscriptions are.
    refused = plan_url_problem(delivery.url)
    if refused:
        raise outbox.DeliveryRefused(refused)
    credentials = base64.b64encode(f":{token}".encode()).decode()
    body = {name: delivery.payload[name] for name in EVENT_FIELDS}
    return outbox.OutboundRequest(
        url=delivery.url,
        body=outbox.json_body(body),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {credentials}"},
    )


outbox.register_channel(CHANNEL, _send_task_completed)
answers.register_answerer(Provider.AZURE.value, answer_wait)
