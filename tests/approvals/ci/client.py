"""Running the signoff-gate client as a CI job runs it: a subprocess with only the variables
the job would have, against the live test server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CLIENT = Path(settings.BASE_DIR) / "tools" / "signoff-gate"
# Fast polling for tests; the defaults (5 s, doubling to 60 s) are for real pipelines.
FAST = ["--interval", "0.05", "--max-interval", "0.2"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def job_env(base_url: str, token: str, **variables: str) -> dict[str, str]:
    """A clean environment: nothing of this machine's SIGNOFF_* or CI variables leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "SIGNOFF_URL": base_url,
        "SIGNOFF_TOKEN": token,
    }
    env.update(variables)
    return env


def run_client(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    finished = subprocess.run(
        [sys.executable, str(CLIENT), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(finished.returncode, finished.stdout, finished.stderr)


def run_shell(script: str, env: dict[str, str], cwd: Path, *, errexit: bool = True) -> Run:
    """A snippet's shell lines. GitHub, GitLab and Jenkins stop at the first failing command
    (`-e`); Azure Pipelines' bash step does not, so its scripts must say `set -e` themselves."""
    options = ["-e", "-o", "pipefail"] if errexit else []
    finished = subprocess.run(
        ["bash", *options, "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(finished.returncode, finished.stdout, finished.stderr)
