"""A worker process knows every outbox channel and pipeline answerer from the moment Django
starts, before anything imports the integrations (which is all a Celery worker does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import django, json
django.setup()
from governance.notifications import outbox
from approvals.pipelines import answers
print(json.dumps({"channels": sorted(outbox._CHANNELS), "answerers": sorted(answers._ANSWERERS)}))
"""


def test_a_freshly_started_process_has_every_channel_and_answerer():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin", "DEBUG": "true"},
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "channels": ["azure", "github", "gitlab", "slack", "teams", "webhook"],
        "answerers": ["azure", "github", "gitlab"],
    }
