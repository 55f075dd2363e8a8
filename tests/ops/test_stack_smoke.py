"""The compose stack, run as processes: compose.yaml's migrate, web, worker and beat with their
exact commands and environment (and the image's, from the Dockerfile), against this machine's
PostgreSQL and Redis. Only host names, ports and paths are swapped for local ones.

An administrator sets the organisation up through the pages, a pipeline asks for approval
through the API, two approvers approve through the release page's form, and the gate answers
approved; the worker delivered the e-mails, and beat's schedule reached the worker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.ops.conftest import PYTHON, ROOT, free_port
from tests.ops.packaging import (
    compose,
    dockerfile_instructions,
    image_environment,
    make_compose_secrets,
)
from tests.ops.processes import eventually, manage, start, stop, wait_until_serving

pytestmark = pytest.mark.postgres

VENV = Path(PYTHON).parent.parent
PROCESSES = ("web", "worker", "beat")
ADMIN_PASSWORD = "stack-smoke-admin-password"
PERSON_PASSWORD = "stack-smoke-person-password"
# What an operator runs once on a new installation (docs/deployment.md).
FIRST_RUN = (
    ("load_default_policy",),
    ("createsuperuser", "--no-input", "--username=admin", "--email=admin@example.com"),
)
DIGEST = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


# --- compose.yaml and the image, as seen from this machine ---------------------------------------


@dataclass
class Localiser:
    """Turns a container's paths into this machine's, and points the service URLs at this
    suite's own database (its name, user and password) and Redis database."""

    folder: Path
    secrets: dict[str, Path]
    database_url: str
    redis_url: str

    def path(self, value: str) -> str:
        for inside, outside in self._mounts():
            if value == inside or value.startswith(f"{inside}/"):
                return outside + value.removeprefix(inside)
        return value

    def _mounts(self) -> list[tuple[str, str]]:
        # Longest first: /app/var (the image's var folder, static files included) before /app.
        secrets = [(f"/run/secrets/{name}", str(file)) for name, file in self.secrets.items()]
        return [
            *secrets,
            ("/opt/venv", str(VENV)),
            ("/app/var", str(self.folder / "var")),
            ("/app", str(ROOT)),
            ("/data", str(self.folder / "data")),
            ("/tmp", str(self.folder / "tmp")),
        ]

    def environment(self, variables: dict[str, str]) -> dict[str, str]:
        local = {name: self.path(value) for name, value in variables.items()}
        local["PATH"] = (
            variables["PATH"]
            .replace("/opt/venv", str(VENV))
            .replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
        )
        local["DATABASE_URL"] = self.database_url
        local["REDIS_URL"] = self.redis_url
        return local

    def command(self, argv: list[str]) -> list[str]:
        """The executable from the virtualenv (the image's PATH), paths made local."""
        return [str(VENV / "bin" / argv[0]), *(self.path(arg) for arg in argv[1:])]


def service_environment(spec: dict, localiser: Localiser) -> dict[str, str]:
    """What a container of the service sees: the image's ENV, its env_file, its environment."""
    from_files = {}
    for name in [spec["env_file"]] if isinstance(spec["env_file"], str) else spec["env_file"]:
        for line in (localiser.folder / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, value = line.split("=", 1)
                from_files[key] = value
    variables = {**image_environment(), **from_files, **spec["environment"]}
    return {
        "HOME": str(localiser.folder),
        "LANG": "C.UTF-8",
        # The image holds no .env (.dockerignore): neither may these processes read the
        # checkout's development one.
        "SIGNOFF_ENV_FILE": str(localiser.folder / "absent.env"),
        **localiser.environment(variables),
    }


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    base: str
    environments: dict[str, dict[str, str]]
    database: str
    logs: dict[str, Path] = field(default_factory=dict)

    def manage(self, *args: str) -> str:
        """A one-off `python manage.py ...` in the web container (`docker compose run web ...`)."""
        return manage(self.environments["web"], *args)

    def run_in(self, service: str, command: str) -> subprocess.CompletedProcess:
        """A shell command as `docker compose exec` runs it in the service's container."""
        return subprocess.run(
            ["sh", "-c", command],
            cwd=ROOT,
            env={**self.environments[service], "HOSTNAME": socket.gethostname()},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def log(self, process: str) -> str:
        return self.logs[process].read_text()


def own_database_url(name: str) -> str:
    """This test's own database on the PostgreSQL the suite runs against."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{name}"


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """An empty database at `url` (or none at all), whatever a stopped run left behind."""
    name = urlsplit(url).path.strip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def finish(process: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Wait for a one-off command (compose's `service_completed_successfully`)."""
    assert process.wait(timeout=timeout) == 0, log.read_text()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # The `postgres` marker's skip comes too late for a module fixture: the same rule, here.
    if connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL; running on {connection.vendor}")
    assert settings.REDIS_URL, "the stack needs Redis: set REDIS_URL"
    folder = tmp_path_factory.mktemp("stack")
    (folder / "tmp").mkdir()
    spec = compose()
    # The operator's first step: the secret files, made by the documented commands.
    make_compose_secrets(folder)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    database = own_database_url(f"{settings.DATABASES['default']['NAME']}_stack{worker}")
    localiser = Localiser(
        folder=folder,
        secrets={name: folder / entry["file"] for name, entry in spec["secrets"].items()},
        database_url=database,
        redis_url=settings.REDIS_URL,
    )
    services = spec["services"]
    environments = {
        name: service_environment(services[name], localiser) for name in ("migrate", *PROCESSES)
    }
    port = free_port()
    environments["web"]["PORT"] = str(port)
    recreate_database(database)
    started: list[subprocess.Popen] = []
    logs = {name: folder / f"{name}.log" for name in ("collectstatic", "migrate", *PROCESSES)}
    try:
        # The image's build step and compose's one-off migrate service, side by side.
        python = str(VENV / "bin" / "python")
        build = start(
            [python, "manage.py", "collectstatic", "--no-input", "-v", "0"],
            env=environments["web"],
            cwd=ROOT,
            log=logs["collectstatic"],
        )
        migrate = start(
            localiser.command(services["migrate"]["command"]),
            env=environments["migrate"],
            cwd=ROOT,
            log=logs["migrate"],
        )
        started += [build, migrate]
        finish(build, logs["collectstatic"])
        finish(migrate, logs["migrate"])
        # depends_on: service_completed_successfully, then web, worker and beat together; the
        # operator's first-run commands meanwhile (`docker compose run --rm web python manage.py`).
        servers = {
            name: start(
                localiser.command(services[name]["command"]),
                env=environments[name],
                cwd=ROOT,
                log=logs[name],
            )
            for name in PROCESSES
        }
        started += servers.values()
        first_run = {
            command[0]: start(
                [python, "manage.py", *command],
                env={**environments["web"], "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
                cwd=ROOT,
                log=folder / f"{command[0]}.log",
            )
            for command in FIRST_RUN
        }
        started += first_run.values()
        for name, process in first_run.items():
            finish(process, folder / f"{name}.log")
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base, servers["web"], logs["web"])
        yield Stack(base, environments, database, logs)
    finally:
        stop(*started)
        recreate_database(database, drop_only=True)


# --- a person's browser --------------------------------------------------------------------------


class Options(HTMLParser):
    """The options of one <select name=...> of a page: label -> value."""

    def __init__(self, select: str) -> None:
        super().__init__()
        self.select, self.inside, self.value, self.found = select, False, None, {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "select":
            self.inside = attributes.get("name") == self.select
        elif tag == "option" and self.inside:
            self.value = attributes.get("value")

    def handle_data(self, data: str) -> None:
        if self.value and data.strip():
            self.found[data.strip()] = self.value
            self.value = None


def option(html: str, select: str, label: str) -> str:
    parser = Options(select)
    parser.feed(html)
    return parser.found[label]


class Browser:
    """A session that signs in and posts forms with the CSRF token, as a browser does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, path: str) -> requests.Response:
        response = self.session.get(f"{self.base}{path}", timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code}"
        return response

    def submit(self, path: str, data: dict) -> requests.Response:
        """POST a form the way its page does; a saved form answers with a redirect."""
        if "csrftoken" not in self.session.cookies:
            self.get(path)
        form = {**data, "csrfmiddlewaretoken": self.session.cookies["csrftoken"]}
        response = self.session.post(
            f"{self.base}{path}",
            data=form,
            headers={"Referer": f"{self.base}{path}"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, f"POST {path}: {response.status_code}\n{response.text}"
        return response

    def sign_in(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        self.submit("/accounts/login/", {"username": username, "password": password})


# --- what an administrator does on a new installation --------------------------------------------


def add_person(admin: Browser, username: str) -> str:
    """Added in /admin/ (people come from SCIM or there), then described in the catalogue."""
    added = admin.submit(
        "/admin/governance/user/add/",
        {
            "username": username,
            "usable_password": "true",
            "password1": PERSON_PASSWORD,
            "password2": PERSON_PASSWORD,
            "_save": "Save",
        },
    )
    pk = re.search(r"/admin/governance/user/(\d+)/change/", added.headers["Location"])[1]
    admin.submit(
        f"/governance/catalogue/people/{pk}/",
        {
            "first_name": username.capitalize(),
            "last_name": "Example",
            "email": f"{username}@example.com",
            "time_zone": "UTC",
            # At work around the clock, so that the stage's e-mail goes to both approvers now.
            "working_hours_start": "0",
            "working_hours_end": "24",
            "is_active": "on",
        },
    )
    return pk


def set_up_organisation(stack: Stack) -> dict[str, str]:
    """A team, production, a service with two approvers, and the pipeline's account; the
    person ids by username."""
    admin = Browser(stack.base)
    admin.sign_in("admin", ADMIN_PASSWORD)
    people = {name: add_person(admin, name) for name in ("alice", "bob", "ci-bot")}
    admin.submit(
        "/governance/catalogue/teams/new/",
        {"name": "Checkout", "slug": "checkout", "members": [people["alice"], people["bob"]]},
    )
    admin.submit(
        "/governance/catalogue/environments/new/",
        {
            "name": "Production",
            "slug": "production",
            "risk": "high",
            "order": "1",
            "platform": "kubernetes",
        },
    )
    form = admin.get("/governance/catalogue/services/new/").text
    admin.submit(
        "/governance/catalogue/services/new/",
        {"name": "checkout-api", "slug": "checkout-api", "tier": "3"}
        | {"team": option(form, "team", "Checkout")},
    )
    service = option(admin.get("/governance/roles/").text, "service", "checkout-api")
    for username, role in (
        ("alice", "approver"),
        ("bob", "approver"),
        ("ci-bot", "release_manager"),
    ):
        admin.submit(
            "/governance/roles/",
            {"user": people[username], "role": role, "service": service, "reason": "New service"},
        )
    return people


def request_release(stack: Stack, token: str) -> dict:
    response = requests.post(
        f"{stack.base}/api/v1/releases/",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "pipeline-1-deploy"},
        json={
            "service": "checkout-api",
            "environment": "production",
            "version": "1.4.0",
            "artifact": {"image": "registry.example.com/checkout/api", "digest": DIGEST},
            "change": {"ref": "CHG0001", "type": "normal", "title": "Gift cards at checkout"},
            "pipeline": {"provider": "gitlab", "run_url": "https://gitlab.example.com/p/1"},
            "evidence": [
                {"kind": "tests", "status": "passed", "summary": {"passed": 412, "failed": 0}},
                {"kind": "security_scan", "status": "passed", "summary": {"critical": 0}},
            ],
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def gate(stack: Stack, token: str, release: int) -> dict:
    response = requests.get(
        f"{stack.base}/api/v1/releases/{release}/gate",
        params={"digest": DIGEST},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def approve_in_browser(stack: Stack, username: str, release: int) -> None:
    browser = Browser(stack.base)
    browser.sign_in(username, PERSON_PASSWORD)
    page = browser.get(f"/approvals/releases/{release}/").text
    assert 'name="verdict" value="approve"' in page
    decided = browser.submit(
        f"/approvals/releases/{release}/decide/",
        {"verdict": "approve", "rationale": f"{username}: reviewed the gift card change"},
    )
    assert decided.headers["Location"] == f"/approvals/releases/{release}/"


def notifications(stack: Stack) -> list[tuple[str, bool]]:
    """(recipient, delivered) of every notification in the stack's database."""
    with psycopg.connect(stack.database) as conn:
        rows = conn.execute(
            "SELECT u.username, n.delivered_at IS NOT NULL FROM governance_notification n"
            " JOIN governance_user u ON u.id = n.recipient_id ORDER BY u.username"
        )
        return [(username, delivered) for username, delivered in rows]


# --- the tests -----------------------------------------------------------------------------------


def test_a_release_is_requested_approved_and_gated_through_the_running_stack(stack):
    ready = requests.get(f"{stack.base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    set_up_organisation(stack)
    token = stack.manage("issue_token", "ci-bot", "--name=pipeline", "--actor=admin").strip()

    requested = request_release(stack, token)
    assert requested["status"] == "pending"
    assert requested["gate"]["status"] == "pending", requested["gate"]
    release = requested["id"]

    approve_in_browser(stack, "alice", release)
    assert gate(stack, token, release)["status"] == "pending"  # dual control: one more
    approve_in_browser(stack, "bob", release)

    answer = gate(stack, token, release)
    assert answer["status"] == "approved", answer
    assert re.fullmatch(r"Approved; valid until \S+ \d\d:\d\d UTC\.", answer["reasons"][0])
    assert len(answer["reasons"]) == 1
    assert [(stage["name"], stage["status"]) for stage in answer["stages"]] == [
        ("Service approval", "approved")
    ]
    assert sorted(a["user"] for a in answer["stages"][0]["approvals"]) == ["alice", "bob"]

    # The stage's e-mails were written by the web process and sent by the worker (the console
    # backend prints them in its log).
    sent = eventually(
        lambda: (rows := notifications(stack)) and all(done for _, done in rows) and rows,
        60,
        "the worker to deliver the notifications",
    )
    # Both approvers when the stage opened (both at work), the requester once it was approved.
    recipients = {username for username, _ in sent}
    assert recipients == {"alice", "bob", "ci-bot"}
    for username in recipients:
        assert f"To: {username}@example.com" in stack.log("worker")


def test_the_containers_healthchecks_pass_against_the_running_processes(stack):
    # The image's HEALTHCHECK, as the web container runs it (ALLOWED_HOSTS lets it in).
    healthcheck = dict(dockerfile_instructions())["HEALTHCHECK"]
    argv = json.loads(healthcheck[healthcheck.index("CMD ") + len("CMD ") :])
    web = stack.run_in("web", shlex.join(argv))
    assert web.returncode == 0, web.stderr
    # compose's worker healthcheck ($$ is compose's escape for $): the worker answers its ping.
    test = compose()["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    worker = stack.run_in("worker", test[1].replace("$$", "$"))
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert f"celery@{socket.gethostname()}: OK" in worker.stdout


def test_beat_sends_the_schedule_and_the_worker_runs_it(stack):
    # The shortest interval in the schedule: post-deploy verification, every 30 seconds.
    eventually(
        lambda: "Sending due task verify-deployments" in stack.log("beat"),
        45,
        "beat to send verify-deployments",
    )
    eventually(
        lambda: re.search(
            r"Task approvals\.verification\.tasks\.verify_deployments_task\[[\w-]+\] succeeded",
            stack.log("worker"),
        ),
        30,
        "the worker to run it",
    )
