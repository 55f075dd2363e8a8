"""Fixtures for operational tests: production settings in a subprocess, and the browser."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(Path(sys.executable))
ENV_EXAMPLE = ROOT / ".env.example"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def documented_environment() -> dict[str, str]:
    """The variables .env.example documents for production, as KEY=VALUE pairs."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def real_secrets() -> dict[str, str]:
    """A SECRET_KEY and a ledger key made the way the README tells operators to make them."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LEDGER_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
    }


def base_environment(var_dir: Path) -> dict[str, str]:
    """A clean environment: no DATABASE_URL/REDIS_URL/DEBUG leaking in from the test run."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(var_dir)),
        "LANG": "C.UTF-8",
        "SIGNOFF_VAR_DIR": str(var_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture
def production_env(tmp_path: Path) -> dict[str, str]:
    """Production settings (DEBUG off) on a SQLite file and the filesystem broker in tmp_path."""
    return {
        **base_environment(tmp_path),
        **real_secrets(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'signoff.sqlite3'}",
    }
