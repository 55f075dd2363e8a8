"""Everything the harness does before Django starts: the database, the environment, the key.

The ledger signing key is kept in a small table of the benchmark database itself, so that the
seeded chain and the key that signed it always travel together across re-runs.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/signoff_bench"
QUICK_URL = "postgres://postgres@127.0.0.1:5432/signoff_bench_quick"
META_TABLE = "signoff_bench_meta"


@dataclass(frozen=True)
class BenchDatabase:
    url: str
    name: str
    created: bool
    signing_key: str


def database_url(quick: bool) -> str:
    """BENCH_DATABASE_URL, else the default (a separate database for --quick smoke runs)."""
    return os.environ.get("BENCH_DATABASE_URL") or (QUICK_URL if quick else DEFAULT_URL)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str) -> bool:
    """Create the target database if missing (connecting to 'postgres'); True when created."""
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit(f"BENCH_DATABASE_URL has no database name: {url}")
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def ensure_signing_key(url: str) -> str:
    """The ledger's Ed25519 key for this database (base64 of the raw private bytes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, value text NOT NULL)"
            ).format(sql.Identifier(META_TABLE))
        )
        fresh = base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (name, value) VALUES ('ledger_signing_key', %s) "
                "ON CONFLICT (name) DO NOTHING"
            ).format(sql.Identifier(META_TABLE)),
            [fresh],
        )
        row = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE name = 'ledger_signing_key'").format(
                sql.Identifier(META_TABLE)
            )
        ).fetchone()
    return row[0]


def prepare(quick: bool) -> BenchDatabase:
    """Create the database and key, and set the environment Django reads at start-up."""
    url = database_url(quick)
    created = ensure_database(url)
    key = ensure_signing_key(url)
    configure_environment(url, key)
    return BenchDatabase(
        url=url, name=urlsplit(url).path.lstrip("/"), created=created, signing_key=key
    )


def configure_environment(url: str, signing_key: str) -> None:
    """Production-like settings: DEBUG off (no query recording), real secrets, PostgreSQL."""
    for name in ("SECRET_KEY_FILE", "LEDGER_SIGNING_KEY_FILE", "LEDGER_PUBLIC_KEYS"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "LEDGER_SIGNING_KEY": signing_key,
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
            # Requests come from the in-process test client, not through a TLS-terminating
            # proxy: production's redirect to HTTPS would answer every one with a 301.
            "SECURE_SSL_REDIRECT": "false",
        }
    )


def read_meta(url: str, name: str) -> str | None:
    """A value remembered in the benchmark database (e.g. how long seeding took)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE name = %s").format(sql.Identifier(META_TABLE)),
            [name],
        ).fetchone()
    return row[0] if row else None


def write_meta(url: str, name: str, value: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ).format(sql.Identifier(META_TABLE)),
            [name, value],
        )
