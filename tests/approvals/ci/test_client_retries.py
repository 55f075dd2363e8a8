"""The client through an unsteady server (a stub on 127.0.0.1): a request retried after a 503
carries the same Idempotency-Key; a 429 is waited out; a refusal is not retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.approvals.ci.client import FAST, job_env, run_client
from tests.approvals.ci.test_client import CI_VARIABLES, DIGEST

REQUEST = [
    *("request", "--service", "payments-api", "--environment", "production"),
    *("--version", "2.5.0", "--image", "registry.example.com/payments/api"),
    *("--digest", DIGEST, "--change", "CHG0031400"),
]
CREATED = {"id": 14, "status": "pending", "url": "/approvals/releases/14/", "gate": {}}
PENDING = {"status": "pending", "reasons": ["Waiting for Service approval."], "stages": []}
APPROVED = {"status": "approved", "reasons": ["Approved."], "stages": []}


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Unsteady:
    """Answers the queued answers in turn (the last one repeats); records what it was sent."""

    answers: list[Answer]
    received: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> Unsteady:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                stub.received.append((self.command, self.path, dict(self.headers), body))
                answer = stub.answers[min(len(stub.received), len(stub.answers)) - 1]
                payload = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in {**answer.headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self


@pytest.fixture
def stub() -> Iterator[Unsteady]:
    server = Unsteady(answers=[]).start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def unavailable(seconds: str = "0") -> Answer:
    error = {"code": "unavailable", "message": "Restarting.", "fields": {}}
    return Answer(503, {"error": error}, {"Retry-After": seconds})


def test_a_request_retried_after_a_503_sends_the_same_idempotency_key(stub):
    stub.answers = [unavailable(), Answer(201, CREATED)]
    env = {**job_env(stub.url, "token"), **CI_VARIABLES["gitlab"][0]}

    run = run_client([*REQUEST, "--retry-for", "10"], env)

    assert run.code == 0, run.stderr
    assert run.stdout == "14\n"
    assert "Signoff refused the call (503 unavailable): Restarting.; trying again" in run.stderr
    keys = [headers["Idempotency-Key"] for _, _, headers, _ in stub.received]
    assert keys == ["signoff-gate:gitlab:payments/api:4711:payments-api:production"] * 2
    assert stub.received[0][3] == stub.received[1][3]


def test_a_request_without_a_run_is_not_retried(stub):
    """No key, no retry: a second POST could open a second release."""
    stub.answers = [unavailable(), Answer(201, CREATED)]

    run = run_client([*REQUEST, "--retry-for", "10"], job_env(stub.url, "token"))

    assert run.code == 69
    assert len(stub.received) == 1
    assert "Idempotency-Key" not in stub.received[0][2]


def test_a_refused_request_is_not_retried(stub):
    error = {"code": "invalid", "message": "Invalid input.", "fields": {"version": ["Bad."]}}
    stub.answers = [Answer(400, {"error": error})]
    env = {**job_env(stub.url, "token"), **CI_VARIABLES["github"][0]}

    run = run_client(REQUEST, env)

    assert run.code == 65
    assert len(stub.received) == 1
    assert 'version: ["Bad."]' in run.stderr


def test_wait_rides_out_a_429_and_a_503(stub):
    throttled = Answer(429, {"error": {"code": "throttled", "message": "Slow down.", "fields": {}}})
    throttled.headers = {"Retry-After": "1"}
    stub.answers = [Answer(200, PENDING), throttled, unavailable(), Answer(200, APPROVED)]

    run = run_client(["wait", "--release", "14", "--timeout", "20", *FAST], job_env(stub.url, "t"))

    assert run.code == 0, run.stderr
    assert [path for _, path, _, _ in stub.received] == ["/api/v1/releases/14/gate"] * 4
    assert "Slow down. (still waiting)" in run.stderr
    assert run.stderr.index("Gate: pending") < run.stderr.index("Gate: approved")
