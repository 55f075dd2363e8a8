"""Production settings, checked and served the way a deployment runs them."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.ops.conftest import (
    PYTHON,
    ROOT,
    base_environment,
    documented_environment,
    free_port,
    real_secrets,
)
from tests.ops.processes import manage, start, stop, wait_until_serving

GUNICORN = str(Path(PYTHON).parent / "gunicorn")
GUNICORN_OPTIONS = ("--workers=1", "--timeout=30")


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    documented = documented_environment()
    assert documented["DEBUG"] == "false"
    # .env.example must not carry a usable secret: the operator generates one.
    assert not documented.get("SECRET_KEY")
    env = {**base_environment(tmp_path), **documented, **real_secrets()}
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Serve the WSGI app the way the README deploys it; always stopped, whatever happens."""
    server = start(
        [GUNICORN, "config.wsgi:application", f"--bind=127.0.0.1:{port}", *GUNICORN_OPTIONS],
        env=env,
        cwd=ROOT,
        log=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server, log)
        yield base
    finally:
        stop(server)


def test_production_serves_pages_assets_and_readiness_through_gunicorn(production_env, tmp_path):
    # The filesystem broker (no REDIS_URL) needs its folders, as bin/run-all makes them.
    for folder in ("queue", "processed", "control", "results"):
        (tmp_path / "broker" / folder).mkdir(parents=True)
    manage(production_env, "collectstatic", "--no-input", "-v", "0")
    manage(production_env, "migrate", "--no-input", "-v", "0")

    with gunicorn(production_env, free_port(), tmp_path / "gunicorn.log") as base:
        https = {"X-Forwarded-Proto": "https"}

        def get(path: str, headers: dict[str, str] = https) -> requests.Response:
            return requests.get(f"{base}{path}", headers=headers, timeout=10, allow_redirects=False)

        login = get("/accounts/login/")
        assert login.status_code == 200, login.text[:2000]
        assert "script-src 'self'" in login.headers["Content-Security-Policy"]
        assert login.headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains; preload"
        )
        # Assets are served under their hashed names, straight from the manifest.
        stylesheet = re.search(
            r'href="(/static/vendor/bootstrap/bootstrap\.min\.\w+\.css)"', login.text
        )
        assert stylesheet, login.text[:2000]
        asset = get(stylesheet[1])
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith("text/css")
        assert "sourceMappingURL" not in asset.text

        docs = get("/api/docs/")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert get("/admin/login/").status_code == 200

        ready = get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["static"] == "ok"

        # Plain HTTP is sent to HTTPS, except the probes, which talk to the process directly.
        plain = get("/accounts/login/", headers={})
        assert plain.status_code == 301
        assert (
            plain.headers["Location"]
            == f"https://127.0.0.1:{base.rsplit(':', 1)[1]}/accounts/login/"
        )
        assert get("/healthz", headers={}).status_code == 200
        assert get("/readyz", headers={}).status_code == 200
