"""Production refuses to start with a placeholder, short or guessable SECRET_KEY."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import CONFIGURING_VARIABLES, require_strong_secret
from tests.ops.conftest import PYTHON, ROOT, base_environment

GENERATOR_HINT = "secrets.token_urlsafe(50)"


@pytest.mark.parametrize(
    "value",
    [
        "change-me",
        "CHANGE-ME",
        "changeme",
        "secret",
        " secret ",
        # Django's startproject key shape (a fixed one: parallel test workers must collect the
        # same test names).
        "django-insecure-k3v9x2q8w7e5r1t6y0u4i3o2p9a8s7d6f5g4h3j2k1l0z9x8c7v6b5n4m3",
        "insecure-development-key-do-not-use-in-production",
    ],
)
def test_a_placeholder_secret_key_is_refused_with_a_way_to_make_one(value):
    with pytest.raises(ImproperlyConfigured, match="placeholder") as refused:
        require_strong_secret("SECRET_KEY", value)
    assert GENERATOR_HINT in str(refused.value)


def test_a_secret_key_shorter_than_50_characters_is_refused():
    with pytest.raises(ImproperlyConfigured, match="49 characters long") as refused:
        require_strong_secret("SECRET_KEY", secrets.token_urlsafe(64)[:49])
    assert GENERATOR_HINT in str(refused.value)


def test_a_secret_key_with_fewer_than_5_distinct_characters_is_refused():
    with pytest.raises(ImproperlyConfigured, match="4 distinct characters"):
        require_strong_secret("SECRET_KEY", "abcd" * 20)


def test_a_missing_secret_key_is_refused():
    with pytest.raises(ImproperlyConfigured, match="must be set") as refused:
        require_strong_secret("SECRET_KEY", None)
    assert GENERATOR_HINT in str(refused.value)


def test_a_generated_secret_key_is_accepted():
    key = secrets.token_urlsafe(50)
    assert require_strong_secret("SECRET_KEY", key) == key


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_with_the_example_files_secret_key(production_env):
    result = manage_check({**production_env, "SECRET_KEY": "change-me"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is a placeholder" in result.stderr
    assert GENERATOR_HINT in result.stderr


def test_development_still_starts_without_a_secret_key(production_env):
    env = {**production_env, "DEBUG": "true"}
    del env["SECRET_KEY"]
    result = manage_check(env)
    assert result.returncode == 0, result.stderr


def test_a_fresh_clones_first_command_runs_in_development_mode_and_says_so(tmp_path):
    """Before `make run` wrote .env, with nothing configured: `manage.py check` works."""
    env = {**base_environment(tmp_path), "SIGNOFF_ENV_FILE": str(tmp_path / "missing.env")}
    result = manage_check(env)
    assert result.returncode == 0, result.stderr
    assert "Development mode for this command (DEBUG on" in result.stderr
    assert "`make run` writes a .env" in result.stderr
    assert not (tmp_path / "missing.env").exists()  # nothing the web server would read later


@pytest.mark.parametrize(
    "entry_point",
    [
        pytest.param(["-c", "import config.wsgi"], id="gunicorn"),
        pytest.param(["-m", "celery", "-A", "config", "report"], id="celery"),
    ],
)
def test_the_web_server_and_celery_never_start_unconfigured(tmp_path, entry_point):
    env = {**base_environment(tmp_path), "SIGNOFF_ENV_FILE": str(tmp_path / "missing.env")}
    result = subprocess.run(
        [PYTHON, *entry_point], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE, a file holding it) must be set" in result.stderr
    assert "Development mode" not in result.stderr


@pytest.mark.parametrize("variable", [name for name in CONFIGURING_VARIABLES if name != "DEBUG"])
def test_a_command_where_anything_is_configured_keeps_production_mode(tmp_path, variable):
    """One production variable set (say DATABASE_URL, SECRET_KEY forgotten): no development."""
    value = "/nonexistent" if variable.endswith("_FILE") else "x"
    env = {
        **base_environment(tmp_path),
        "SIGNOFF_ENV_FILE": str(tmp_path / "missing.env"),
        variable: value,
    }
    result = manage_check(env)
    assert result.returncode != 0
    assert "Development mode" not in result.stderr
    assert "ImproperlyConfigured" in result.stderr or "FileNotFoundError" in result.stderr


def test_a_missing_secret_key_beside_other_settings_is_refused_with_how_to_start(
    production_env, tmp_path
):
    env = {**production_env, "SIGNOFF_ENV_FILE": str(tmp_path / "missing.env")}
    del env["SECRET_KEY"], env["DEBUG"]
    result = manage_check(env)
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE, a file holding it) must be set" in result.stderr
    assert "`make run` (or `.venv/bin/python bin/dev-env`) first writes" in result.stderr
    assert "Development mode" not in result.stderr


def test_production_without_a_secret_key_is_not_sent_to_the_development_env_file(
    production_env, tmp_path
):
    env_file = tmp_path / "production.env"
    env_file.write_text("ALLOWED_HOSTS=127.0.0.1\n")
    env = {**production_env, "SIGNOFF_ENV_FILE": str(env_file)}
    del env["SECRET_KEY"]
    result = manage_check(env)
    assert "must be set when DEBUG is off" in result.stderr
    assert "make run" not in result.stderr
