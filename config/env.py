"""Strict, typed readers for environment-driven settings.

Junk values raise instead of silently falling back: a typo in DEBUG must not turn debugging on.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name: str) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name) or None


# Values people paste from examples and tutorials; any of them makes signed cookies forgeable.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "your-secret-key",
        "replace-me",
        "insecure",
        "password",
        "xxx",
        "todo",
        "insecure-development-key-do-not-use-in-production",
    }
)
SECRET_GENERATOR = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'
SECRET_MIN_LENGTH = 50
# Said when production settings find no key and no development .env: a fresh clone's first
# manage.py command, run before `make run`.
DEVELOPMENT_ENV_HINT = (
    ". For development, `make run` (or `.venv/bin/python bin/dev-env`) first writes a"
    " git-ignored .env that turns DEBUG on"
)
SECRET_MIN_DISTINCT = 5

# What an operator sets to configure Signoff. With none of them and no development .env, a
# manage.py command is a fresh clone's first step rather than production (see manage.py).
CONFIGURING_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "LEDGER_SIGNING_KEY",
    "LEDGER_SIGNING_KEY_FILE",
)
FRESH_CLONE_NOTICE = (
    "Development mode for this command (DEBUG on, SQLite and the broker under var/): there is no"
    " .env and none of SECRET_KEY, DATABASE_URL, DEBUG... is set. `make run` writes a .env;"
    " production sets its variables (.env.example), and the web server never starts without them."
)


def development_env_file() -> Path:
    """The git-ignored development .env that `make run` writes (SIGNOFF_ENV_FILE names another)."""
    return Path(os.environ.get("SIGNOFF_ENV_FILE", Path(__file__).resolve().parent.parent / ".env"))


def is_unconfigured() -> bool:
    """True where nothing is configured: no development .env, none of the variables production
    sets. Only manage.py acts on it; the web server and Celery refuse to start instead."""
    configured = any(name in os.environ for name in CONFIGURING_VARIABLES)
    return not configured and not development_env_file().exists()


def require_strong_secret(name: str, value: str | None, *, hint: str = "") -> str:
    """Return `value` if it is fit to sign sessions in production; raise with the fix otherwise.

    The bar is Django's own deploy check (security.W009), turned into a refusal to start: at
    least 50 characters, at least 5 distinct ones, and none of the well-known placeholders.
    """
    value = value or ""
    if not value:
        problem = f"(or {name}_FILE, a file holding it) must be set when DEBUG is off"
    elif value.strip().lower() in PLACEHOLDER_SECRETS or value.startswith("django-insecure-"):
        problem = "is a placeholder"
    elif len(value) < SECRET_MIN_LENGTH:
        problem = f"is {len(value)} characters long; it needs at least {SECRET_MIN_LENGTH}"
    elif len(set(value)) < SECRET_MIN_DISTINCT:
        problem = f"has only {len(set(value))} distinct characters; it needs at least 5"
    else:
        return value
    raise ImproperlyConfigured(f"{name} {problem}. Generate one with: {SECRET_GENERATOR}{hint}")
