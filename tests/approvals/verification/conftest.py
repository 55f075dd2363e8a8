"""Fixtures for post-deploy verification: a real HTTP server on 127.0.0.1 that answers health
polls with the status a test sets and records the calls it receives (the rollback hook)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from approvals import services
from approvals.models import Deployment, Release
from tests import factories

SECRET = "rollback-signing-secret"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    """GET answers `health_status` (a Location header with 3xx); POST answers 204. Every call
    is recorded in `calls`."""

    health_status: int = 200
    calls: list[Call] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def received(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def start(self) -> Stub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.calls.append(Call("GET", self.path, dict(self.headers), b""))
                self.send_response(stub.health_status)
                if 300 <= stub.health_status < 400:
                    self.send_header("Location", stub.url("/elsewhere"))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stub.calls.append(Call("POST", self.path, dict(self.headers), body))
                self.send_response(204)
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
def stub(settings) -> Iterator[Stub]:
    server = Stub().start()
    settings.SIGNOFF_EVENT_WEBHOOK_SECRET = SECRET
    settings.SIGNOFF_EVENT_WEBHOOKS = []
    yield server
    server.stop()


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member) -> Release:
    """dave's tier-1 payments-api release to production, approved by every stage: the
    built-in policy verifies it for 15 minutes after a successful deployment."""
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return production_release


@pytest.fixture
def deploy(pipeline_bot):
    """`deploy(release, rollback_url=...)`: the pipeline reports a successful deployment."""

    def report(release: Release, **fields) -> Deployment:
        return services.record_deployment(
            release=release, actor=pipeline_bot, status="succeeded", **fields
        )

    return report
