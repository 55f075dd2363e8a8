"""Fixtures for the CI integrations: a stand-in for Azure DevOps on 127.0.0.1, the check's
headers as Azure DevOps sends them, and a pipeline token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from approvals.pipelines import azure  # noqa: F401  (registers the "azure" channel and answerer)
from tests import factories

PLAN_ID = "4f0e9a3c-1b6d-4c55-9d43-2a7f8e1c0b11"
JOB_ID = "0a8e2d4b-7c6f-4e1a-b3d2-9f5c1e7a6b22"
TIMELINE_ID = "6d3b1f9e-2a4c-4b8d-8e7f-1c5a9d2b3e33"
TASK_ID = "9c7a5e3b-1d2f-4a6b-8c9d-0e1f2a3b4c44"
PROJECT_ID = "2e4c6a8b-0d1f-4e3a-9b5c-7d9f1a3c5e55"
AUTH_TOKEN = "azure-job-access-token-from-system-accesstoken"


@dataclass
class AzureRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class AzureDevOps:
    """Stands in for Azure DevOps' plan events API on 127.0.0.1: records every request and
    answers the next status of `statuses` (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[AzureRequest] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def plan_url(self) -> str:
        """What $(system.CollectionUri) would be: the organisation's URL, with a slash."""
        return f"http://127.0.0.1:{self.server.server_port}/acme/"

    def start(self) -> AzureDevOps:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.received.append(AzureRequest("POST", self.path, dict(self.headers), body))
                status = stub.statuses[min(len(stub.received), len(stub.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def azure_devops(settings) -> Iterator[AzureDevOps]:
    """The stub, and Signoff allowed to call it (a loopback host is refused otherwise)."""
    settings.SIGNOFF_AZURE_DEVOPS_HOSTS = ("127.0.0.1",)
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True
    stub = AzureDevOps().start()
    yield stub
    stub.stop()


def check_headers(plan_url: str, **overrides: str) -> dict[str, str]:
    """The headers of an Invoke REST API check in callback mode (its documented defaults),
    as Django's test client takes them."""
    values = {
        "PlanUrl": plan_url,
        "ProjectId": PROJECT_ID,
        "HubName": "build",
        "PlanId": PLAN_ID,
        "JobId": JOB_ID,
        "TimelineId": TIMELINE_ID,
        "TaskInstanceId": TASK_ID,
        "AuthToken": AUTH_TOKEN,
    }
    values.update(overrides)
    return {f"HTTP_{name.upper()}": value for name, value in values.items() if value is not None}


@pytest.fixture
def pipeline_token(pipeline_bot) -> str:
    return factories.token_for(pipeline_bot)
