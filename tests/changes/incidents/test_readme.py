"""The README's Incidents section runs as written (its shell blocks, in order, in one shell)
against a live server holding the demo organisation, like the pipeline walkthrough."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

import pytest
from django.core.management import call_command

from approvals.models import Release
from changes.incidents.models import Incident, IntegrationConfig
from tests.ops.conftest import ROOT
from tests.ops.test_readme_commands import DOCUMENTED_URL, database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def incidents_section() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Incidents") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def documents(output: str) -> list[dict]:
    """The JSON documents curl printed, back to back (curl adds no newline)."""
    decoder, found, index = json.JSONDecoder(), [], output.find("{")
    while index != -1:
        document, end = decoder.raw_decode(output, index)
        found.append(document)
        index = output.find("{", end)
    return found


def test_the_readme_incidents_section_runs_as_written(live_server):
    call_command("seed_demo", stdout=io.StringIO())
    script = "set -euo pipefail\n" + "\n".join(incidents_section())
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "true"}
    env.pop("PAGERDUTY_SECRET", None)

    result = subprocess.run(
        ["bash", "-c", script.replace(DOCUMENTED_URL, live_server.url)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = documents(result.stdout)
    assert lines[0] == {"status": "created"}
    assert [s.slug for s in Incident.objects.get(external_id="Q9TRYIT").services.all()] == [
        "ingress-gateway"
    ]
    assert len(IntegrationConfig.objects.get().secrets) == 1
    fix = Release.objects.get(version="4.2.1")
    assert fix.change.incident.external_id == "INC0040200"
    assert lines[1]["status"] == "pending"
    assert lines[2]["status"] == "resolved"
