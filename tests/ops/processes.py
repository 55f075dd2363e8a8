"""Processes that operational tests start (gunicorn, Celery, manage.py): started in a process
group of their own, waited for, and always stopped with everything they spawned."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.ops.conftest import PYTHON, ROOT


def eventually(check: Callable[[], object], timeout: float, what: str) -> object:
    """The first truthy result of `check`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `python manage.py ARGS` to completion; its output, or a failure showing it."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def start(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start `argv` with its output in `log`, leading a new session so that `stop` also ends
    the children it forks (gunicorn's workers, Celery's pool)."""
    with log.open("w") as output:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(*processes: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM each leader at once, as `docker stop` signals a container's first process: gunicorn
    and Celery then stop their own children gracefully (signalling a Celery pool process directly
    would abort its task and stall the warm shutdown). Whatever is left is SIGKILLed."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        # The group too: children outlive a leader that was killed or exited first.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def wait_until_serving(
    base: str, process: subprocess.Popen, log: Path, timeout: float = 60
) -> None:
    """Return once `base`/healthz answers; fail with the server's log if it exits or never does."""

    def answering() -> bool:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        try:
            requests.get(f"{base}/healthz", timeout=10)
        except (requests.ConnectionError, requests.Timeout):  # still booting
            return False
        return True

    try:
        eventually(answering, timeout, f"{base} to answer")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()}") from None
