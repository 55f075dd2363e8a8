"""A newcomer's first start: quiet, and every command works in any terminal afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dotenv import dotenv_values

from tests.ops.conftest import PYTHON, ROOT, base_environment

DEV_ENV = ROOT / "bin" / "dev-env"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def first_start_environment(tmp_path: Path) -> dict[str, str]:
    """A fresh terminal: nothing exported but where the development files go."""
    return {**base_environment(tmp_path / "var"), "SIGNOFF_ENV_FILE": str(tmp_path / ".env")}


def test_the_development_env_file_keeps_its_secrets_and_follows_the_port(tmp_path):
    env = first_start_environment(tmp_path)

    assert run([str(DEV_ENV), "--port", "8000"], env).returncode == 0
    first = dotenv_values(tmp_path / ".env")
    assert run([str(DEV_ENV), "--port", "18790"], env).returncode == 0
    second = dotenv_values(tmp_path / ".env")

    assert first["DEBUG"] == "true"
    assert len(first["SECRET_KEY"]) >= 50
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["LEDGER_SIGNING_KEY_FILE"] == str(tmp_path / "var" / "ledger-signing.key")
    assert Path(second["LEDGER_SIGNING_KEY_FILE"]).exists()
    assert (first["SITE_URL"], second["SITE_URL"]) == (
        "http://127.0.0.1:8000",
        "http://127.0.0.1:18790",
    )
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # readable by its owner only
    # A throwaway GitHub App for the demo, kept across runs, readable by its owner only.
    key_file = Path(second["SIGNOFF_GITHUB_APP_PRIVATE_KEY_FILE"])
    assert (
        second["SIGNOFF_GITHUB_APP_PRIVATE_KEY_FILE"]
        == first["SIGNOFF_GITHUB_APP_PRIVATE_KEY_FILE"]
    )
    assert key_file == tmp_path / "var" / "github-app-demo.pem"
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key_file.stat().st_mode & 0o077 == 0
    assert second["SIGNOFF_GITHUB_APP_ID"] == "1000001"


def test_a_first_start_is_quiet_and_commands_work_without_exporting_anything(tmp_path):
    env = first_start_environment(tmp_path)
    run([str(DEV_ENV), "--port", "18790"], env)

    steps = [
        ["manage.py", "migrate", "--no-input", "-v", "0"],
        ["manage.py", "seed_demo"],
        ["manage.py", "issue_token", "ci-bot", "--name", "readme"],
        ["manage.py", "verify_ledger"],
    ]
    results = [run(step, env) for step in steps]

    for step, result in zip(steps, results, strict=True):
        assert result.returncode == 0, (step, result.stderr)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, (step, output)
        assert "WARNING" not in output.replace("WARNING: no ledger checkpoint", ""), (step, output)
    token = results[2].stdout.strip()
    assert token.startswith("so_") and "\n" not in token  # TOKEN=$(...) captures just the token
    site = run(
        [
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "from django.conf import settings; "
            "print(settings.SITE_URL, settings.SCIM_SERVICE_PROVIDER['NETLOC'])",
        ],
        env,
    )
    assert site.stdout.split() == ["http://127.0.0.1:18790", "127.0.0.1:18790"]
