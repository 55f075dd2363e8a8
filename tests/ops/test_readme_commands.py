"""The README's pipeline walkthrough runs as written: its shell blocks, in order, in one shell,
against a live server holding the demo organisation (only the URL is swapped for the server's).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection

from approvals.models import Deployment, Release
from tests.ops.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

README = ROOT / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


def pipeline_walkthrough() -> list[str]:
    """The ```sh blocks of the README's "Pipeline API" section, in order."""
    text = README.read_text()
    section = text[text.index("## Pipeline API") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_the_walkthrough_covers_request_gate_evidence_decision_and_deployment():
    script = "\n".join(pipeline_walkthrough())
    for step in ("issue_token", "/api/v1/releases/ ", "/gate?", "/evidence/", "/decisions/"):
        assert step in script
    assert "/deployments/" in script


def database_url() -> str:
    """The test database, for the walkthrough's `manage.py issue_token` calls."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_the_readme_pipeline_walkthrough_runs_as_written(live_server):
    call_command("seed_demo", stdout=io.StringIO())
    script = "set -euo pipefail\n" + "\n".join(pipeline_walkthrough())
    script = script.replace(DOCUMENTED_URL, live_server.url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
    }

    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )

    assert result.returncode == 0, result.stdout + result.stderr
    created = json.loads(result.stdout.splitlines()[0])
    assert created["status"] == "pending"
    release = Release.objects.get(pk=created["id"])
    assert (release.service.slug, release.version, release.triggered_by.username) == (
        "payments-api",
        "2.5.0",
        "dave",
    )
    assert release.evidence.filter(kind="security_scan").exists()
    decision = release.approval.decisions.get()
    assert (decision.approver.username, decision.verdict) == ("alice", "approve")
    deployment = Deployment.objects.get(release=release)
    assert (deployment.approved, deployment.gate_status) == (False, "pending")
