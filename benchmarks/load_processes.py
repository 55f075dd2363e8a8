"""The processes `make load` runs: the commands compose.yaml gives its web, worker and beat
services, started as N web replicas (each a gunicorn on its own loopback port), M workers and
exactly one beat, each in its own process group, always stopped; and the CPU time they used.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPOSE_FILE = ROOT / "compose.yaml"
HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # seconds for every process to come up on a busy machine
STOP_GRACE = 15.0  # seconds for a graceful stop before the process group is killed
LOG_TAIL = 40
# Lines left out of a log's tail: Django's warnings for the expected 403 and 409 answers
# (refused duplicate decisions), gunicorn's access log and Celery's line per task would hide
# everything else. Plain or JSON lines (config/logs.py writes JSON in production).
QUIET_LINES = re.compile(
    r'(^|"message": ")(Forbidden|Conflict): /api/v1/releases/'
    r'|"logger": "(gunicorn\.access|celery\.app\.trace|celery\.worker\.strategy)"'
)
WORKER_QUEUES = "outbound,verification,sweeps,reports,default"
# The decided layout, used only when compose.yaml is not in the checkout.
DECIDED_LAYOUT = {
    "web": "gunicorn -c config/gunicorn.conf.py config.wsgi",
    "worker": f"celery -A config worker --queues {WORKER_QUEUES} --concurrency 2 --loglevel INFO",
    "beat": "celery -A config beat --loglevel INFO --schedule /tmp/celerybeat-schedule",
}


@dataclass(frozen=True)
class Layout:
    """The commands of the three kinds of process, and where they were read from."""

    web: tuple[str, ...]
    worker: tuple[str, ...]
    beat: tuple[str, ...]
    source: str


def kind_of(command: list[str]) -> str | None:
    """web, worker or beat for a service's command; None for anything else (migrations)."""
    words = [Path(word).name for word in command]
    if "gunicorn" in words:
        return "web"
    if "celery" in words:
        for kind in ("worker", "beat"):
            if kind in words:
                return kind
    return None


def read_layout(path: Path = COMPOSE_FILE) -> Layout:
    """The web, worker and beat commands of compose.yaml's services (recognised by what they
    run, whatever their names); the decided layout when the file does not exist."""
    if not path.exists():
        return Layout(
            *(tuple(shlex.split(DECIDED_LAYOUT[kind])) for kind in ("web", "worker", "beat")),
            source="the decided layout (no compose.yaml)",
        )
    import yaml

    services = (yaml.safe_load(path.read_text()) or {}).get("services") or {}
    found: dict[str, tuple[str, ...]] = {}
    for service in services.values():
        command = (service or {}).get("command")
        command = shlex.split(command) if isinstance(command, str) else list(command or [])
        kind = kind_of(command)
        if kind and kind not in found:
            found[kind] = tuple(str(word) for word in command)
    missing = sorted({"web", "worker", "beat"} - set(found))
    if missing:
        raise SystemExit(f"{path.name} has no service running {', '.join(missing)}")
    return Layout(found["web"], found["worker"], found["beat"], source=path.name)


def local_command(command: tuple[str, ...], *extra: str) -> list[str]:
    """`command` run from this virtualenv (its gunicorn, celery, python), with `extra`
    options after the file's own: for a single-valued option the last one given wins."""
    first = BIN / command[0]
    executable = str(first) if first.exists() else command[0]
    return [executable, *command[1:], *extra]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = LOG_TAIL) -> str:
        """The last lines of the log, without the expected warnings and the access log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        kept = [line for line in text.splitlines() if not QUIET_LINES.search(line)]
        return "\n".join(kept[-lines:])

    def says(self, words: str) -> bool:
        return self.log.exists() and words in self.log.read_text(errors="replace")


def start_server(name: str, command: list[str], env: dict[str, str], log_path: Path) -> Server:
    """Start `command` in its own session, so that a terminal's Ctrl-C reaches only the load
    test (which then stops it cleanly) and the whole group can be killed as one."""
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, process, log_path)


def stop_server(server: Server, log: Callable[[str], None]) -> None:
    """SIGTERM to the main process (gunicorn drains, Celery finishes running tasks), a bounded
    wait, then SIGKILL for whatever is left of its process group (pool children included)."""
    process = server.process
    if process.poll() is None:
        # Only the main process: signalling Celery's pool children directly aborts their tasks.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            log(f"{server.name} did not stop within {STOP_GRACE:.0f} s; killing its group")
    # The group is gone already (ProcessLookupError) when every process in it has exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"{server.name} (pid {process.pid}) is still running after SIGKILL")


@dataclass(frozen=True)
class Replicas:
    """How many of each process to run, and the per-process sizes."""

    web: int
    workers: int
    gunicorn_workers: int
    threads: int
    concurrency: int

    @property
    def label(self) -> str:
        """E.g. `2 web + 2 workers`."""
        return f"{self.web} web + {self.workers} worker{'s' if self.workers > 1 else ''}"


@contextmanager
def running_servers(
    layout: Layout,
    replicas: Replicas,
    env: dict[str, str],
    var_dir: Path,
    ports: list[int],
    log: Callable[[str], None],
) -> Iterator[list[Server]]:
    """The web replicas, the workers and one beat, ready; all stopped on the way out."""
    servers: list[Server] = []
    try:
        for index, port in enumerate(ports, start=1):
            web_env = {
                **env,
                "PORT": str(port),
                "WEB_CONCURRENCY": str(replicas.gunicorn_workers),
                "WEB_THREADS": str(replicas.threads),
            }
            # Loopback only, and no control socket: its default lives in $HOME, shared.
            command = local_command(layout.web, f"--bind={HOST}:{port}", "--no-control-socket")
            servers.append(
                start_server(f"web-{index}", command, web_env, var_dir / f"web-{index}.log")
            )
        for index in range(1, replicas.workers + 1):
            command = local_command(
                layout.worker,
                f"--concurrency={replicas.concurrency}",
                f"--hostname=load-{index}@%h",
            )
            servers.append(
                start_server(f"worker-{index}", command, env, var_dir / f"worker-{index}.log")
            )
        # Exactly one beat, whatever the number of workers: two would send every task twice.
        command = local_command(layout.beat, f"--schedule={var_dir / 'celerybeat-schedule'}")
        servers.append(start_server("beat", command, env, var_dir / "beat.log"))
        wait_ready(servers, ports)
        yield servers
    finally:
        for server in reversed(servers):
            stop_server(server, log)


def wait_ready(servers: list[Server], ports: list[int]) -> None:
    """Until every web replica's /readyz answers 200, every worker says ready and beat started."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = {server.name for server in servers}
    while waiting:
        for server in servers:
            if server.process.poll() is not None:
                raise SystemExit(f"{server.name} exited during start-up:\n{server.tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in servers if s.name in waiting)
            raise SystemExit(f"not ready within {START_TIMEOUT:.0f} s:\n{tails}")
        for server, port in zip(servers, ports, strict=False):
            if server.name in waiting and _ready(port):
                waiting.discard(server.name)
        for server in servers[len(ports) :]:
            ready = " ready." if server.name.startswith("worker") else "beat: Starting..."
            if server.says(ready):
                waiting.discard(server.name)
        time.sleep(0.3)


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", "/readyz", headers={"X-Forwarded-Proto": "https"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


# --- CPU time per kind of process ---

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used by the processes of a process group, including children they reaped
    (a recycled gunicorn worker, a replaced Celery pool process)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(pid)
        if fields and int(fields[2]) == pgid:
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def backend_cpu_seconds(database: str) -> dict[str, float]:
    """CPU seconds of each PostgreSQL backend connected to `database`, by pid."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        # A backend's title: "postgres: [<cluster>:] <user> <database> <client> <state>"
        # (Debian names the cluster, e.g. "15/main:").
        words = title.replace("\0", " ").split()
        if words[:1] == ["postgres:"] and database in words[1:4]:
            fields = _stat(pid)
            if fields:
                found[pid] = sum(int(value) for value in fields[11:13]) / TICKS
    return found


class CpuMeter:
    """CPU seconds used by web, worker, beat and PostgreSQL between start() and stop()."""

    def __init__(self, servers: list[Server], database: str) -> None:
        self.servers, self.database = servers, database
        self.used: dict[str, float] = {}

    def _groups(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for server in self.servers:
            kind = server.name.split("-")[0]
            totals[kind] = totals.get(kind, 0.0) + group_cpu_seconds(server.process.pid)
        return totals

    def start(self) -> None:
        self._groups_before = self._groups()
        self._backends_before = backend_cpu_seconds(self.database)

    def stop(self) -> None:
        after = self._groups()
        self.used = {kind: after[kind] - self._groups_before.get(kind, 0.0) for kind in after}
        # Backends opened during the load count from zero; closed ones are lost (rare: pools).
        backends = backend_cpu_seconds(self.database)
        self.used["postgres"] = sum(
            seconds - self._backends_before.get(pid, 0.0) for pid, seconds in backends.items()
        )
