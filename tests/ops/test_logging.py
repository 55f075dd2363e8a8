"""Structured logs: one JSON object a line with the request's correlation id, from the web process
(Django and gunicorn's access log) and from the worker running a task that request enqueued; and
no secret in any of them."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from celery import Celery
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from config.celery import app
from tests import factories
from tests.ops.conftest import PYTHON, ROOT, base_environment, free_port, real_secrets
from tests.ops.processes import eventually, start, stop
from tests.ops.servers import RedisServer
from tests.ops.test_production import gunicorn
from tests.ops.test_readme_commands import database_url

logger = logging.getLogger("signoff.tests")
CELERY = str(Path(PYTHON).parent / "celery")
# The worker command of the deployment layout, one pool process.
WORKER = [
    CELERY,
    "-A",
    "config",
    "worker",
    "--queues",
    "outbound,verification,sweeps,reports,default",
]
WORKER_OPTIONS = ["--concurrency", "1", "--loglevel", "INFO"]
BROKER_PASSWORD = "broker-pw-" + secrets.token_hex(8)


def careless_view(request: HttpRequest) -> HttpResponse:
    """Logs what no view should, then fails with a secret in the exception: redaction must
    catch all of it."""
    logger.warning("Pipeline call: headers=%s form=%s", dict(request.headers), request.POST.dict())
    logger.warning(
        "Signing with %s (session key %s), broker redis://:%s@redis:6379/0",
        settings.LEDGER_SIGNING_KEY,
        settings.SECRET_KEY,
        BROKER_PASSWORD,
    )
    raise RuntimeError(f"Upstream refused {request.headers['Authorization']}")


urlpatterns = [path("careless/", careless_view), path("", include("config.urls"))]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict]]]:
    """What the configured console handler writes, read from that handler's own stream."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)


def without_time(line: dict) -> dict:
    """The line minus its timestamp, after checking that it is ISO 8601 in UTC."""
    stamp = line.pop("time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", stamp), stamp
    return line


@pytest.mark.django_db
def test_lines_logged_for_a_request_carry_its_id_and_lines_outside_carry_null(log_lines):
    response = Client().get("/no-such-page/", headers={"X-Request-ID": "req-logs-404"})
    logger.info("Between requests")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-logs-404"
    # Django logs the 404 after the middleware chain has returned: the id is still there.
    ours = [line for line in log_lines() if line["logger"] in ("django.request", "signoff.tests")]
    assert [without_time(line) for line in ours] == [
        {
            "level": "WARNING",
            "logger": "django.request",
            "message": "Not Found: /no-such-page/",
            "correlation_id": "req-logs-404",
            "process_kind": "command",
            "status_code": 404,
        },
        {
            "level": "INFO",
            "logger": "signoff.tests",
            "message": "Between requests",
            "correlation_id": None,
            "process_kind": "command",
        },
    ]


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_no_secret_reaches_the_log(log_lines, auditor, settings):
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.LEDGER_SIGNING_KEY = base64.b64encode(os.urandom(32)).decode()
    token, password, code = factories.token_for(auditor), "Wr0ng-" + secrets.token_hex(6), "492816"
    client = Client(raise_request_exception=False)

    signed_in = client.post("/accounts/login/", {"username": "erin", "password": password})
    refused = client.get("/api/v1/releases/", headers={"Authorization": f"Bearer {token}x"})
    failed = client.post(
        "/careless/",
        {"username": "erin", "password": password, "step_up_code": code},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-careless"},
    )

    assert (signed_in.status_code, refused.status_code, failed.status_code) == (200, 401, 500)
    lines = log_lines()
    output = json.dumps(lines)
    for secret in (token, password, code, settings.SECRET_KEY, settings.LEDGER_SIGNING_KEY):
        assert secret not in output
    assert BROKER_PASSWORD not in output
    careless = [line for line in lines if line["logger"] == "signoff.tests"]
    assert "'Authorization': '[redacted]'" in careless[0]["message"]
    assert "'password': '[redacted]', 'step_up_code': '[redacted]'" in careless[0]["message"]
    assert careless[1]["message"] == (
        "Signing with [redacted] (session key [redacted]), broker redis://[redacted]@redis:6379/0"
    )
    error = next(line for line in lines if line["level"] == "ERROR")
    assert (error["logger"], error["message"]) == (
        "django.request",
        "Internal Server Error: /careless/",
    )
    assert error["correlation_id"] == "req-careless"
    # The exception stays readable: its type and where it happened, only the token is gone.
    assert error["exception"].startswith("Traceback (most recent call last):")
    assert error["exception"].endswith("RuntimeError: Upstream refused Bearer [redacted]")


# --- One gunicorn and one worker: the id travels from the request into the task ----------------


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[None]:
    """The deployment's worker command; always stopped, whatever happens."""
    worker = start([*WORKER, *WORKER_OPTIONS], env=env, cwd=ROOT, log=log)
    try:
        yield
    finally:
        stop(worker)


def json_lines(log: Path) -> list[dict]:
    """The JSON lines of a process's output (a worker also prints its banner, not a log line)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for_lines(log: Path, wanted: Callable[[dict], bool], count: int = 1) -> list[dict]:
    """The lines of `log` that `wanted` picks, once there are `count` of them."""

    def found() -> list[dict] | None:
        lines = [line for line in json_lines(log) if wanted(line)]
        return lines if len(lines) >= count else None

    try:
        return eventually(found, 30, f"{count} such lines in {log.name}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log.read_text()[-5000:]}") from None


def task_succeeded(task: str) -> Callable[[dict], bool]:
    return lambda line: line.get("task_name") == task and "succeeded" in line["message"]


def access_line(lines: list[dict], request_line: str) -> dict:
    return next(
        line
        for line in lines
        if line["logger"] == "gunicorn.access" and request_line in line["message"]
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_web_and_worker_lines_carry_the_request_correlation_id(auditor, tmp_path, request):
    token = factories.token_for(auditor)
    # A Redis of its own: tasks other tests left queued in the shared one would reach this
    # test's worker and log lines of their own.
    redis_server = RedisServer(tmp_path).start()
    request.addfinalizer(redis_server.stop)
    broker = redis_server.url()
    env = {
        **base_environment(tmp_path),
        **real_secrets(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker,
        # The deployed web command: `gunicorn -c config/gunicorn.conf.py config.wsgi`.
        "GUNICORN_CMD_ARGS": "--config config/gunicorn.conf.py",
    }
    https = {"X-Forwarded-Proto": "https"}
    export = "/reports/compliance.csv?framework=SOX&from=2026-01-01&to=2026-06-30"
    worker_log, web_log = tmp_path / "worker.log", tmp_path / "web.log"

    with celery_worker(env, worker_log), gunicorn(env, free_port(), web_log) as base:
        queued = requests.get(
            base + export,
            headers={**https, "Authorization": f"Bearer {token}", "X-Request-ID": "req-export"},
            timeout=10,
        )
        refused = requests.get(
            f"{base}/api/v1/releases/",
            headers={**https, "Authorization": f"Bearer {token}x", "X-Request-ID": "req-refused"},
            timeout=10,
        )
        # Sent the way beat sends its tasks: outside any request.
        with Celery(broker=broker).connection_for_write() as connection:
            for _ in range(2):
                app.send_task("governance.tasks.expire_role_grants_task", connection=connection)
        [exported] = wait_for_lines(
            worker_log, task_succeeded("reporting.tasks.compliance_export_task")
        )
        swept = wait_for_lines(
            worker_log, task_succeeded("governance.tasks.expire_role_grants_task"), 2
        )

    assert (queued.status_code, refused.status_code) == (202, 401)
    # The task's lines carry the id of the request that enqueued it, and say which task it is.
    assert (exported["correlation_id"], exported["process_kind"]) == ("req-export", "worker")
    assert exported["task_id"] in exported["message"]
    # Each run started outside a request gets an id of its own.
    sweep_ids = {line["correlation_id"] for line in swept}
    assert len(sweep_ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in sweep_ids)

    web_text = web_log.read_text()
    web = [json.loads(line) for line in web_text.splitlines()]  # every line is JSON
    assert {line["process_kind"] for line in web} == {"web"}
    assert any(line["message"].startswith("Starting gunicorn") for line in web)
    assert access_line(web, f'"GET {export} HTTP/1.1" 202')["correlation_id"] == "req-export"
    assert (
        access_line(web, '"GET /api/v1/releases/ HTTP/1.1" 401')["correlation_id"] == "req-refused"
    )
    unauthorized = next(line for line in web if line["logger"] == "django.request")
    assert (unauthorized["message"], unauthorized["correlation_id"]) == (
        "Unauthorized: /api/v1/releases/",
        "req-refused",
    )
    assert token not in web_text and token not in worker_log.read_text()
