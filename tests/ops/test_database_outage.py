"""PostgreSQL restarted under a running server: requests during the outage get a clear 503 and
change nothing; the same gunicorn serves again once the database is back, without a restart."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.ops.conftest import PYTHON, ROOT, base_environment, free_port, real_secrets
from tests.ops.processes import eventually, manage
from tests.ops.servers import PostgresCluster
from tests.ops.test_production import gunicorn

# django_db: pytest-django creates the test database (copied below) only for tests that ask.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Static files for the production storage, then an approver with a session and a token, and a
# release waiting for her decision. One process: each Django start costs seconds.
SEED = """
import json
from django.core.management import call_command
from django.test import Client
from approvals import services
from governance.models import Role
from tests import factories
call_command("collectstatic", interactive=False, verbosity=0)
call_command("load_default_policy", verbosity=0)
team = factories.TeamFactory(slug="payments", name="Payments")
service = factories.ServiceFactory(slug="web-frontend", tier=3, team=team)
dave = factories.UserFactory(username="dave")
alice = factories.UserFactory(username="alice")
factories.grant(dave, Role.RELEASE_MANAGER, service)
factories.grant(alice, Role.APPROVER, service)
data = factories.release_input(service, factories.environment("staging"))
release, _ = services.request_approval(data=data, actor=dave)
browser = Client()
browser.force_login(alice)
print(json.dumps({"release": release.pk, "digest": release.digest,
                  "token": factories.token_for(alice),
                  "session": browser.cookies["sessionid"].value}))
"""
UNAVAILABLE = (
    "Signoff cannot reach its database right now. Nothing was changed: try again in a minute."
)
# Requests wait DATABASE_POOL_TIMEOUT (3 s) for a connection before the 503.
QUICKLY = 5
HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def cluster(django_db_setup):
    """A private cluster holding a copy of the migrated, empty test database: copied with
    pg_dump/pg_restore in a second, where `migrate` takes most of a minute."""
    cluster = PostgresCluster().start()
    source = connection.settings_dict
    # The migrated test database that django_db_setup made (its name in this run).
    name = source["NAME"]
    address = ["-h", source["HOST"], "-p", str(source["PORT"]), "-U", source["USER"]]
    dump = subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", *address, name],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", "-d", cluster.url],
        input=dump,
        capture_output=True,
        check=True,
        timeout=120,
    )
    yield cluster
    cluster.remove()


@pytest.fixture
def site(cluster, tmp_path) -> dict:
    """Production settings on the private cluster, with static files collected and the seed."""
    folder = tmp_path
    for name in ("queue", "processed", "control", "results"):
        (folder / "broker" / name).mkdir(parents=True)
    env = {
        **base_environment(folder),
        **real_secrets(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": cluster.url,
        "PYTHONPATH": str(ROOT),
    }
    seeded = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", SEED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    return {"env": env, "folder": folder, **json.loads(seeded.stdout.strip().splitlines()[-1])}


def timed(method: str, url: str, **kwargs) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=30, allow_redirects=False, **kwargs)
    return time.monotonic() - started, response


def test_a_database_restart_answers_503_meanwhile_and_the_same_server_recovers(
    cluster: PostgresCluster, site: dict
):
    release = site["release"]
    api = {**HTTPS, "Authorization": f"Bearer {site['token']}"}
    decision = {"decision": "approve", "rationale": "Reviewed the diff", "digest": site["digest"]}
    browser = {"cookies": {"sessionid": site["session"]}, "headers": HTTPS}

    log = Path(site["folder"]) / "gunicorn.log"
    with gunicorn(site["env"], free_port(), log) as base:
        gate = f"{base}/api/v1/releases/{release}/gate"
        assert requests.get(gate, headers=api, timeout=10).json()["status"] == "pending"
        assert timed("GET", f"{base}/approvals/", **browser)[1].status_code == 200

        cluster.stop()
        seconds, page = timed("GET", f"{base}/approvals/", **browser)
        assert page.status_code == 503, page.text[:2000]
        assert page.headers["Retry-After"] == "30"
        assert "Signoff cannot reach its database right now" in page.text
        assert "Nothing was changed" in page.text
        assert seconds < QUICKLY, f"the 503 page took {seconds:.1f} s"

        seconds, answer = timed(
            "POST", f"{base}/api/v1/releases/{release}/decisions/", headers=api, json=decision
        )
        assert answer.status_code == 503, answer.text[:2000]
        assert answer.headers["Retry-After"] == "30"
        assert answer.json() == {
            "error": {"code": "unavailable", "message": UNAVAILABLE, "fields": {}}
        }
        assert seconds < QUICKLY, f"the API's 503 took {seconds:.1f} s"
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"

        cluster.start()
        # The same process serves again: the pool replaces its dead connections on checkout.
        eventually(
            lambda: requests.get(gate, headers=api, timeout=10).status_code == 200,
            15,
            "the server to answer again after the database came back",
        )
        # Not restarted either: gunicorn booted its one worker once, at the start.
        assert log.read_text().count("Booting worker") == 1, log.read_text()
        assert timed("GET", f"{base}/approvals/", **browser)[1].status_code == 200
        # The decision sent during the outage left nothing: sent again, it is the first.
        assert cluster.query("SELECT count(*) FROM approvals_decision") == [(0,)]
        seconds, answer = timed(
            "POST", f"{base}/api/v1/releases/{release}/decisions/", headers=api, json=decision
        )
        assert answer.status_code == 201, answer.text[:2000]
        assert cluster.query("SELECT count(*) FROM approvals_decision") == [(1,)]
    manage(site["env"], "verify_ledger")
