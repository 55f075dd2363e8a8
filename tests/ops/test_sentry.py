"""Error reporting: with SENTRY_DSN set, an unhandled exception reaches the ingest server once,
tagged with the request's correlation id and without secrets; without it, nothing is loaded."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.ops.conftest import PYTHON, ROOT, base_environment, real_secrets
from tests.stubs import Receiver

# Run in a process of its own: the SDK patches Django for good once initialised, which the
# rest of the test run must not inherit.
FAIL_ONE_REQUEST = """
import django, sentry_sdk
django.setup()
from django.test import Client, override_settings
with override_settings(ROOT_URLCONF="tests.ops.test_sentry"):
    response = Client(raise_request_exception=False).get(
        "/fail/", headers={"Authorization": "Bearer %s", "X-Request-ID": "req-sentry"}
    )
sentry_sdk.flush(timeout=10)
print(response.status_code)
"""
IS_LOADED = """
import django, sys
django.setup()
loaded = "sentry_sdk" in sys.modules
import sentry_sdk
print(loaded, sentry_sdk.get_client().is_active())
"""


def failing_view(request: HttpRequest) -> HttpResponse:
    """Fails the way a careless error message would, quoting the caller's token."""
    token = request.headers["Authorization"].removeprefix("Bearer ")
    raise LookupError(f"No pipeline holds the token {token}")


urlpatterns = [path("fail/", failing_view)]


def run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def environment(tmp_path, **extra: str) -> dict[str, str]:
    """Development settings on a SQLite file nobody opens (the view needs no database)."""
    return {
        **base_environment(tmp_path),
        **real_secrets(),
        "DEBUG": "true",
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SIGNOFF_ENV_FILE": os.devnull,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        **extra,
    }


def envelopes(receiver: Receiver) -> list[list[dict]]:
    """Each envelope the stub received, as its list of JSON lines (headers and payloads)."""
    found = []
    for request in receiver.received:
        body = request.body
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        found.append([json.loads(line) for line in body.splitlines() if line.strip()])
    return found


def test_an_unhandled_exception_is_reported_once_with_its_correlation_id_and_no_secret(tmp_path):
    receiver = Receiver(status=200).start()
    token = "so_" + secrets.token_urlsafe(32)
    env = environment(
        tmp_path,
        SENTRY_DSN=f"http://publickey@127.0.0.1:{receiver.server.server_port}/1",
        SENTRY_ENVIRONMENT="ci",
        SENTRY_RELEASE="signoff@1.2.3",
    )
    try:
        status = run(FAIL_ONE_REQUEST % token, env)
    finally:
        receiver.stop()

    assert status == "500"
    events = [item for envelope in envelopes(receiver) for item in envelope if "exception" in item]
    assert len(events) == 1
    [event] = events
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == (
        "LookupError",
        "No pipeline holds the token [redacted]",
    )
    assert event["tags"]["correlation_id"] == "req-sentry"
    assert (event["environment"], event["release"]) == ("ci", "signoff@1.2.3")
    # Neither the token (message, local variables, request headers) nor the keys of the process.
    text = json.dumps(envelopes(receiver))
    for secret in (token, env["SECRET_KEY"], env["LEDGER_SIGNING_KEY"]):
        assert secret not in text
    assert "user" not in event  # send_default_pii is off


def test_without_a_dsn_the_sdk_is_not_even_loaded(tmp_path):
    assert run(IS_LOADED, environment(tmp_path)) == "False False"
