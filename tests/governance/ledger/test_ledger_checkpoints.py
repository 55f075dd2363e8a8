"""Signed checkpoints anchor the ledger outside the database, so an emptied chain is noticed."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from config import settings as config_settings
from governance import tasks
from governance.ledger import checkpoints
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import LedgerEntry, LedgerHead


@pytest.fixture
def entries(production_release) -> list[LedgerEntry]:
    """The ledger after seeding an organisation and one production request."""
    rows = list(LedgerEntry.objects.order_by("seq"))
    assert len(rows) >= 5
    return rows


def run(command: str, **options: object) -> tuple[str, str]:
    """A management command's (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(command, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def checkpoint_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint-*.json"))


def only_checkpoint(folder: Path) -> tuple[Path, dict]:
    [path] = checkpoint_files(folder)
    return path, json.loads(path.read_text())


def as_superuser_without_triggers(*statements: tuple[str, list]) -> None:
    """Run SQL the way a database superuser can: with every trigger switched off.

    `session_replication_role = replica` skips ordinary triggers; the protection in the database
    cannot stop this, which is why checkpoints live outside it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def empty_the_ledger() -> tuple[str, list]:
    return ("TRUNCATE governance_ledgerentry", [])


def reset_the_head() -> tuple[str, list]:
    return (
        "UPDATE governance_ledgerhead SET seq = 0, entry_hash = %s",
        [ledger_format.GENESIS_HASH],
    )


def resigned_forgery(entry: LedgerEntry) -> tuple[str, str, dict]:
    """(hash, signature, payload) of a forged version of `entry`, signed with the real key."""
    payload = {**entry.payload, "rationale": "forged"}
    body = ledger_format.canonical_bytes(
        seq=entry.seq,
        recorded_at=entry.recorded_at.isoformat(timespec="microseconds"),
        kind=entry.kind,
        subject=entry.subject,
        actor=entry.actor,
        payload=payload,
        prev_hash=entry.prev_hash,
    )
    digest = ledger_format.entry_hash(body)
    return digest, ledger_format.sign(ledger.signing_key(), digest), payload


def rewrite_last_entry(entry: LedgerEntry) -> str:
    """Replace the last entry by a re-signed forgery and point the head at it; its new hash."""
    digest, signature, payload = resigned_forgery(entry)
    as_superuser_without_triggers(
        (
            "UPDATE governance_ledgerentry SET payload = %s, entry_hash = %s, signature = %s "
            "WHERE seq = %s",
            [json.dumps(payload), digest, signature, entry.seq],
        ),
        ("UPDATE governance_ledgerhead SET entry_hash = %s", [digest]),
    )
    return digest


# --- Writing checkpoints ---------------------------------------------------------------------


def test_checkpoint_command_writes_a_signed_checkpoint_of_the_head(entries, ledger_checkpoints):
    last = entries[-1]

    out, _ = run("ledger_checkpoint")

    path, document = only_checkpoint(ledger_checkpoints)
    assert sorted(document) == [
        "entry_hash",
        "format",
        "key_id",
        "recorded_at",
        "seq",
        "signature",
    ]
    assert (document["format"], document["seq"], document["entry_hash"], document["key_id"]) == (
        "signoff-ledger-checkpoint/1",
        last.seq,
        last.entry_hash,
        last.key_id,
    )
    stamp = datetime.fromisoformat(document["recorded_at"]).strftime("%Y%m%dT%H%M%S%fZ")
    assert path.name == f"checkpoint-{last.seq:012d}-{stamp}.json"
    signed = ledger_format.checkpoint_bytes(
        seq=last.seq, entry_hash=last.entry_hash, recorded_at=document["recorded_at"]
    )
    ledger.signing_key().public_key().verify(bytes.fromhex(document["signature"]), signed)
    assert out == f"Ledger checkpoint written: entry #{last.seq} in {path.name}.\n"


def test_checkpoint_is_skipped_when_the_head_has_not_moved(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)

    out, _ = run("ledger_checkpoint")

    assert only_checkpoint(ledger_checkpoints) == (path, document)
    assert out == (
        f"Ledger checkpoint unchanged: entry #{entries[-1].seq} is already anchored by "
        f"{path.name}.\n"
    )


def test_beat_task_writes_a_new_file_once_the_ledger_moved(entries, ledger_checkpoints):
    first = tasks.write_ledger_checkpoint_task()
    first_text = (ledger_checkpoints / first).read_text()
    assert tasks.write_ledger_checkpoint_task() is None

    with transaction.atomic():
        entry = ledger.append(kind="test.event", subject="test:1", actor="system", payload={})
    second = tasks.write_ledger_checkpoint_task()

    assert [path.name for path in checkpoint_files(ledger_checkpoints)] == [first, second]
    assert first.startswith(f"checkpoint-{entries[-1].seq:012d}-")
    assert second.startswith(f"checkpoint-{entry.seq:012d}-")
    assert (ledger_checkpoints / first).read_text() == first_text


def test_beat_writes_a_checkpoint_every_five_minutes():
    assert settings.CELERY_BEAT_SCHEDULE["write-ledger-checkpoint"] == {
        "task": "governance.tasks.write_ledger_checkpoint_task",
        "schedule": 300.0,
    }


def test_an_empty_ledger_is_not_checkpointed(db, ledger_checkpoints):
    out, _ = run("ledger_checkpoint")

    assert out == "Ledger is empty: nothing to anchor yet.\n"
    assert checkpoint_files(ledger_checkpoints) == []


def test_checkpoints_default_to_a_folder_under_var(ledger_checkpoints):
    """Tests write to a temporary folder; the configured default is var/checkpoints/."""
    configured = config_settings.STORAGES[config_settings.LEDGER_CHECKPOINT_STORAGE]

    assert config_settings.LEDGER_CHECKPOINT_STORAGE == "ledger_checkpoints"
    assert configured == {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": os.environ.get("LEDGER_CHECKPOINT_DIR")
            or str(config_settings.VAR_DIR / "checkpoints")
        },
    }
    assert checkpoints.checkpoint_storage().location == str(ledger_checkpoints)


@pytest.mark.postgres
def test_writer_refuses_to_anchor_a_ledger_that_no_longer_extends_the_last_checkpoint(
    entries, ledger_checkpoints
):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)
    as_superuser_without_triggers(empty_the_ledger(), reset_the_head())
    with transaction.atomic():  # the application carries on appending from #1
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})

    with pytest.raises(CommandError) as excinfo:
        run("ledger_checkpoint")

    assert str(excinfo.value) == (
        f"Ledger checkpoint REFUSED: the ledger ends at entry #1, before entry #{entries[-1].seq} "
        f"of the last checkpoint {path.name}; entries were removed. Run verify_ledger."
    )
    assert only_checkpoint(ledger_checkpoints) == (path, document)


@pytest.mark.postgres
def test_writer_refuses_to_anchor_an_emptied_ledger(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)
    as_superuser_without_triggers(empty_the_ledger(), reset_the_head())

    with pytest.raises(checkpoints.CheckpointRefused) as excinfo:
        tasks.write_ledger_checkpoint_task()

    assert str(excinfo.value) == (
        f"the ledger ends at entry #0, before entry #{entries[-1].seq} of the last checkpoint "
        f"{path.name}; entries were removed. Run verify_ledger."
    )
    assert only_checkpoint(ledger_checkpoints) == (path, document)


@pytest.mark.postgres
def test_writer_refuses_to_anchor_a_rewritten_chain(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)
    rewrite_last_entry(entries[-1])

    with pytest.raises(checkpoints.CheckpointRefused) as excinfo:
        tasks.write_ledger_checkpoint_task()

    assert str(excinfo.value) == (
        f"entry #{entries[-1].seq} no longer matches the last checkpoint {path.name}; "
        "the chain was rewritten. Run verify_ledger."
    )
    assert only_checkpoint(ledger_checkpoints) == (path, document)


# --- verify_ledger against the latest checkpoint ----------------------------------------------


def test_verify_ledger_names_the_checkpoint_it_checked(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    with transaction.atomic():
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})
    run("ledger_checkpoint")
    latest = checkpoint_files(ledger_checkpoints)[-1]
    document = json.loads(latest.read_text())

    out, err = run("verify_ledger")

    lines = out.splitlines()
    assert lines[0].startswith(f"Ledger OK: {len(entries) + 1} entries verified in ")
    assert lines[1:] == [
        f"Checkpoint OK: entry #{len(entries) + 1} matches {latest.name} "
        f"(signed {document['recorded_at']})."
    ]
    assert err == ""


def test_verify_ledger_warns_when_there_is_no_checkpoint(entries, ledger_checkpoints):
    out, err = run("verify_ledger")

    assert out.startswith(f"Ledger OK: {len(entries)} entries verified in ")
    assert err == (
        "WARNING: no ledger checkpoint found, so a shortened or emptied ledger would go "
        "unnoticed; write one with `manage.py ledger_checkpoint`.\n"
    )


@pytest.mark.postgres
def test_an_emptied_ledger_fails_verification_against_the_checkpoint(entries, ledger_checkpoints):
    """The reported hole: a superuser switches the triggers off, truncates, resets the head."""
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)

    as_superuser_without_triggers(empty_the_ledger(), reset_the_head())

    assert (LedgerEntry.objects.count(), LedgerHead.objects.get().seq) == (0, 0)
    with pytest.raises(CommandError) as excinfo:
        run("verify_ledger")
    assert str(excinfo.value) == (
        f"Ledger verification FAILED against checkpoint {path.name}: the ledger holds 0 entries "
        f"but this checkpoint, signed {document['recorded_at']}, covers entry "
        f"#{entries[-1].seq}: entries were removed."
    )


@pytest.mark.postgres
def test_a_shortened_ledger_fails_verification_against_the_checkpoint(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)
    keep = entries[-3]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE governance_ledgerentry DISABLE TRIGGER ALL")
        cursor.execute("ALTER TABLE governance_ledgerhead DISABLE TRIGGER ALL")
        cursor.execute("DELETE FROM governance_ledgerentry WHERE seq > %s", [keep.seq])
        cursor.execute(
            "UPDATE governance_ledgerhead SET seq = %s, entry_hash = %s",
            [keep.seq, keep.entry_hash],
        )
        cursor.execute("ALTER TABLE governance_ledgerentry ENABLE TRIGGER ALL")
        cursor.execute("ALTER TABLE governance_ledgerhead ENABLE TRIGGER ALL")

    assert ledger.verify() == (keep.seq, None)  # the chain alone looks whole
    with pytest.raises(CommandError) as excinfo:
        run("verify_ledger")
    assert str(excinfo.value) == (
        f"Ledger verification FAILED against checkpoint {path.name}: the ledger holds "
        f"{keep.seq} entries but this checkpoint, signed {document['recorded_at']}, covers entry "
        f"#{entries[-1].seq}: entries were removed."
    )


@pytest.mark.postgres
def test_a_rewritten_entry_at_the_checkpoint_is_detected(entries, ledger_checkpoints):
    """Someone holding the signing key can re-sign a forgery; the checkpoint still tells."""
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)

    rewrite_last_entry(entries[-1])

    assert ledger.verify() == (len(entries), None)  # hash and signature are valid
    with pytest.raises(CommandError) as excinfo:
        run("verify_ledger")
    assert str(excinfo.value) == (
        f"Ledger verification FAILED against checkpoint {path.name}: entry #{entries[-1].seq} "
        f"differs from the one this checkpoint, signed {document['recorded_at']}, recorded: "
        "the chain was rewritten."
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signature", "00" * 64),
        ("seq", 1),
        ("entry_hash", "0" * 64),
        ("recorded_at", "2030-01-01T00:00:00.000000+00:00"),
    ],
)
def test_a_tampered_checkpoint_fails_verification(entries, ledger_checkpoints, field, value):
    run("ledger_checkpoint")
    path, document = only_checkpoint(ledger_checkpoints)
    path.write_text(json.dumps({**document, field: value}))

    with pytest.raises(CommandError) as excinfo:
        run("verify_ledger")

    assert str(excinfo.value) == (
        f"Ledger verification FAILED against checkpoint {path.name}: its signature is not valid "
        "(the checkpoint was altered or forged)."
    )


def test_an_unreadable_checkpoint_fails_verification(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    path, _ = only_checkpoint(ledger_checkpoints)
    path.write_text("{not json")

    with pytest.raises(CommandError, match=rf"against checkpoint {path.name}: not a checkpoint"):
        run("verify_ledger")


@pytest.mark.postgres
def test_every_checkpoint_is_checked_on_request(entries, ledger_checkpoints):
    """With the key and write access to the store, someone can rewrite the chain and sign a newer
    checkpoint for it: the latest then matches, but the older checkpoints still tell."""
    run("ledger_checkpoint")
    original, document = only_checkpoint(ledger_checkpoints)
    forged_hash = rewrite_last_entry(entries[-1])
    later = datetime.fromisoformat(document["recorded_at"]) + timedelta(minutes=5)
    forged = ledger_format.sign_checkpoint(
        ledger.signing_key(),
        seq=entries[-1].seq,
        entry_hash=forged_hash,
        recorded_at=later.astimezone(UTC).isoformat(timespec="microseconds"),
    )
    (ledger_checkpoints / forged.file_name()).write_text(forged.to_json())

    out, _ = run("verify_ledger")
    assert f"matches {forged.file_name()}" in out
    with pytest.raises(CommandError) as excinfo:
        run("verify_ledger", all_checkpoints=True)

    assert str(excinfo.value).startswith(
        f"Ledger verification FAILED against checkpoint {original.name}: "
        f"entry #{entries[-1].seq} differs from the one this checkpoint"
    )


def test_verify_ledger_checks_every_checkpoint_on_request(entries, ledger_checkpoints):
    run("ledger_checkpoint")
    with transaction.atomic():
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})
    run("ledger_checkpoint")
    latest = checkpoint_files(ledger_checkpoints)[-1]

    out, _ = run("verify_ledger", all_checkpoints=True)

    assert out.splitlines()[1] == (
        f"Checkpoint OK: entry #{len(entries) + 1} matches {latest.name} "
        f"(signed {json.loads(latest.read_text())['recorded_at']}); 2 checkpoints checked."
    )
