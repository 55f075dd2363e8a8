"""docs/operations.md's backup and restore commands, run as written against a seeded PostgreSQL
database: the restored ledger verifies against the latest checkpoint, and a backup older than
the latest checkpoint is reported as a shortened ledger until the documented recovery."""

from __future__ import annotations

import io
import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from approvals.models import Decision
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import LedgerEntry
from tests import factories
from tests.ops.conftest import PYTHON, ROOT, base_environment, real_secrets
from tests.ops.test_readme_commands import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

OPERATIONS = ROOT / "docs" / "operations.md"
# What the documented commands name, swapped for the test's own server, files and database.
DOCUMENTED_SERVER = "postgres://signoff@db.internal:5432"
DOCUMENTED_BACKUP = "signoff-20261207T023000Z.dump"
DOCUMENTED_DATABASE = "signoff_restored"
DOCUMENTED_CHECKPOINTS = "/srv/signoff/checkpoints-after-restore-20261207"


def documented_blocks(heading: str) -> list[str]:
    """The ```sh blocks under a heading of docs/operations.md, up to the next heading."""
    text = OPERATIONS.read_text()
    section = text[text.index(f" {heading}\n") :]
    following = re.search(r"\n#+ ", section)
    section = section[: following.start()] if following else section
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def run_script(script: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def server_url() -> str:
    return database_url().rsplit("/", 1)[0]


def psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", url, "--no-psqlrc", "--tuples-only", "--no-align", "--command", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def checkpoint_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint-*.json"))


def signed_at(path: Path) -> str:
    return json.loads(path.read_text())["recorded_at"]


@pytest.fixture
def restored_database():
    """The name of the database to restore into, made from the test database's own name (so
    parallel runs never meet), dropped before and after."""
    name = f"{connection.settings_dict['NAME']}_restored"

    def drop() -> None:
        subprocess.run(
            ["dropdb", "--if-exists", f"--maintenance-db={server_url()}/postgres", name],
            check=True,
            # DROP DATABASE waits for a checkpoint, which took over 30 s while other test runs
            # wrote to the same server.
            timeout=180,
        )

    drop()
    yield name
    drop()


@pytest.fixture
def operator_env(tmp_path, ledger_checkpoints) -> dict[str, str]:
    """Production settings on the test database, with this process's ledger key and its
    checkpoint store: what an operator's shell holds."""
    return {
        **base_environment(tmp_path / "var"),
        **real_secrets(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        "LEDGER_SIGNING_KEY": ledger_format.private_key_text(ledger.signing_key()),
        "LEDGER_CHECKPOINT_DIR": str(ledger_checkpoints),
    }


@pytest.fixture
def seeded(production_release, approver, second_approver):
    """An organisation, a production request approved by two service approvers (now with the
    CAB), and a checkpoint of it all."""
    factories.decide(production_release, approver)
    factories.decide(production_release, second_approver)
    call_command("ledger_checkpoint", stdout=io.StringIO())
    return production_release


def take_backup(env: dict[str, str], folder: Path) -> Path:
    """Run the documented backup in `folder`; the dump it wrote."""
    folder.mkdir()
    result = run_script("\n".join(documented_blocks("Taking a backup")), env, cwd=folder)
    assert (result.returncode, result.stderr) == (0, "")
    [dump] = folder.glob("signoff-*.dump")
    return dump


def restore(backup: Path, database: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the documented restore (createdb, pg_restore, verify_ledger) of `backup`."""
    script = "\n".join(documented_blocks("Restoring"))
    script = script.replace(DOCUMENTED_SERVER, server_url()).replace(DOCUMENTED_BACKUP, str(backup))
    return run_script(script.replace(DOCUMENTED_DATABASE, database), env)


def test_restore_drill_verifies_the_restored_ledger_then_reports_entries_lost_since_the_backup(
    seeded, cab_member, operator_env, restored_database, tmp_path, ledger_checkpoints
):
    """One drill (a restore costs seconds): last night's backup restores and verifies against
    the latest checkpoint; once production has moved on and checkpointed past the backup, the
    same restored database is a backup older than the latest checkpoint, which verify_ledger
    reports until the documented recovery gives it a new checkpoint store."""
    backup = take_backup(operator_env, tmp_path / "backups")
    backed_up = LedgerEntry.objects.count()
    [checkpoint] = checkpoint_files(ledger_checkpoints)

    restored = restore(backup, restored_database, operator_env)

    restored_url = f"{server_url()}/{restored_database}"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[0].startswith(f"Ledger OK: {backed_up} entries verified ")
    assert restored.stdout.splitlines()[1:] == [
        f"Checkpoint OK: entry #{backed_up} matches {checkpoint.name} "
        f"(signed {signed_at(checkpoint)})."
    ]
    decisions = psql(restored_url, f"SELECT count(*) FROM {Decision._meta.db_table}")
    assert decisions.stdout == "2\n"
    # The ledger's guards came back with the data, and hold in the restored database.
    truncate = psql(restored_url, f"TRUNCATE {LedgerEntry._meta.db_table}")
    assert truncate.returncode == 1
    assert (
        "ledger entries are append-only: TRUNCATE of governance_ledgerentry is refused"
        in truncate.stderr
    )

    # Production moves on after the backup and is checkpointed: the restore lost those entries.
    factories.decide(seeded, cab_member)
    call_command("ledger_checkpoint", stdout=io.StringIO())
    head = LedgerEntry.objects.count()
    old_store = checkpoint_files(ledger_checkpoints)
    env = {**operator_env, "DATABASE_URL": restored_url, "RESTORE_DATABASE_URL": restored_url}

    shorter = run_script(f"{PYTHON} manage.py verify_ledger", env)

    assert (head > backed_up, shorter.returncode) == (True, 1)
    assert shorter.stderr.splitlines()[-1:] == [
        f"CommandError: Ledger verification FAILED against checkpoint {old_store[-1].name}: the "
        f"ledger holds {backed_up} entries but this checkpoint, signed "
        f"{signed_at(old_store[-1])}, covers entry #{head}: entries were removed."
    ]

    new_store = tmp_path / "checkpoints-after-restore"
    recovery = "\n".join(documented_blocks("What `verify_ledger` says after a restore"))
    recovered = run_script(recovery.replace(DOCUMENTED_CHECKPOINTS, str(new_store)), env)

    # A new store anchors the restored chain; the old one stays, untouched, as evidence.
    [fresh] = checkpoint_files(new_store)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines()[0] == (
        f"Ledger checkpoint written: entry #{backed_up} in {fresh.name}."
    )
    assert recovered.stdout.splitlines()[2] == (
        f"Checkpoint OK: entry #{backed_up} matches {fresh.name} (signed {signed_at(fresh)})."
    )
    assert checkpoint_files(ledger_checkpoints) == old_store
