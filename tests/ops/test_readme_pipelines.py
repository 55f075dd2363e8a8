"""The README's GitHub and GitLab walkthrough runs as written: its shell blocks, in order, in
one shell, against a live server holding the demo organisation (only the URL is swapped)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

import pytest
from django.core.management import call_command

from approvals.models import PipelineWait
from governance.models import Delivery
from tests.ops.conftest import ROOT
from tests.ops.test_readme_commands import DOCUMENTED_URL, database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def pipelines_walkthrough() -> list[str]:
    """The ```sh blocks of the README's "Pipelines and clusters" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Pipelines and clusters") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def json_documents(output: str) -> list[dict]:
    """The JSON objects curl printed (without newlines between them), in order."""
    decoder, found, at = json.JSONDecoder(), [], output.find("{")
    while at != -1:
        document, end = decoder.raw_decode(output, at)
        found.append(document)
        at = output.find("{", end)
    return found


def test_the_readme_github_and_gitlab_walkthrough_runs_as_written(live_server):
    call_command("seed_demo", stdout=io.StringIO())
    script = "set -euo pipefail\n" + "\n".join(pipelines_walkthrough())
    script = script.replace(DOCUMENTED_URL, live_server.url)
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "true"}

    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )

    assert result.returncode == 0, result.stdout + result.stderr
    created, github, gitlab = json_documents(result.stdout)
    assert created["status"] == "approved"  # dev releases of payments-api need nobody
    for linked in (github, gitlab):
        assert (linked["status"], linked["release"], linked["answer"]) == (
            "linked",
            created["id"],
            "approved",
        )
    waits = PipelineWait.objects.filter(release_id=created["id"])
    assert sorted(waits.values_list("provider", "answer")) == [
        ("github", "approved"),
        ("gitlab", "approved"),
    ]
    queued = Delivery.objects.filter(channel__in=["github", "gitlab"], status="pending")
    assert sorted(queued.values_list("channel", flat=True)) == ["github", "gitlab"]
