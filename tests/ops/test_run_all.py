"""`make run`'s runner (bin/run-all): a dead worker is restarted; stopping leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ops.conftest import PYTHON, ROOT, base_environment, free_port
from tests.ops.processes import eventually

RUN_ALL = ROOT / "bin" / "run-all"


def processes_from(var_dir: Path) -> dict[int, str]:
    """pid -> command line of every process started with SIGNOFF_VAR_DIR=var_dir (run-all's)."""
    marker = f"SIGNOFF_VAR_DIR={var_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # ended while we looked
    return {pid: cmd.decode(errors="replace").strip() for pid, cmd in found.items()}


def worker_leaders(var_dir: Path) -> list[int]:
    """The Celery worker main processes: started with setsid, so each leads its own group."""
    return [
        pid
        for pid, command in processes_from(var_dir).items()
        if "celery" in command and _pgid(pid) == pid
    ]


def group_of(leader: int, var_dir: Path) -> list[int]:
    return [pid for pid in processes_from(var_dir) if _pgid(pid) == leader]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def run_all(var_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """bin/run-all on SQLite and the filesystem broker in tmp_path; everything it started is
    stopped afterwards, whatever the test did."""
    env = {**base_environment(var_dir), "DEBUG": "true", "PORT": str(free_port())}
    migrated = subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrated.returncode == 0, migrated.stderr
    output = tmp_path / "run-all.out"
    with output.open("w") as out:
        runner = subprocess.Popen(
            [str(RUN_ALL)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield runner, f"http://127.0.0.1:{env['PORT']}", output
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait(timeout=5)
        for pid in processes_from(var_dir):  # only what this test's run-all started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_restarted_while_the_web_server_keeps_serving(run_all, var_dir):
    runner, base, output = run_all
    eventually(lambda: healthy(base), 60, "the web server")
    first = eventually(lambda: worker_leaders(var_dir), 30, "the worker")[0]
    # Let the worker start its pool and embedded beat: there are children to leave behind.
    eventually(
        lambda: len(group_of(first, var_dir)) >= 3 and group_of(first, var_dir),
        30,
        "the worker's pool processes",
    )

    os.kill(first, signal.SIGKILL)

    # The web server keeps answering, and a new worker comes up in a new group.
    for _ in range(5):
        assert healthy(base)
        time.sleep(0.2)
    second = eventually(lambda: [p for p in worker_leaders(var_dir) if p != first], 30, "a restart")
    assert runner.poll() is None
    assert healthy(base)
    # Nothing of the killed worker's group survives (its pool processes and beat).
    eventually(lambda: not group_of(first, var_dir), 15, "the killed worker's group to end")
    assert "restarting" in output.read_text().lower()

    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=40) == 0
    # Everything run-all started has stopped: web server, worker, pool processes, beat.
    eventually(lambda: not processes_from(var_dir), 10, "every process of run-all to end")
    assert _pgid(second[0]) is None
