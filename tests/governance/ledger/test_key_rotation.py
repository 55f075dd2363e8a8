"""Rotating the ledger key: the new key signs, the old one keeps verifying, the hand-over is on
record, and a missing retired key is named with what to do about it."""

from __future__ import annotations

import io
import json
import shlex
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from governance.ledger import export as ledger_export
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import LedgerEntry
from tests import factories
from tests.governance.ledger.test_ledger_checkpoints import (
    as_superuser_without_triggers,
    empty_the_ledger,
    reset_the_head,
)
from tests.governance.ledger.test_offline_verifier import TOOL, run

KEY_A = Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32)
KEY_A_ID = ledger_format.key_id(KEY_A.public_key())
KEY_A_PUBLIC = ledger_format.public_key_text(KEY_A.public_key())
OPERATIONS = Path(django_settings.BASE_DIR) / "docs" / "operations.md"
DOCUMENTED_OUTPUT = "/run/secrets/ledger-signing-2027.key"


def documented_rotation(output: Path) -> list[str]:
    """The arguments of docs/operations.md's rotate_ledger_key command, writing to `output`."""
    [line] = [
        line
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith(".venv/bin/python manage.py rotate_ledger_key ")
    ]
    arguments = shlex.split(line)[3:]
    return [str(output) if argument == DOCUMENTED_OUTPUT else argument for argument in arguments]


def use_keys(settings, signing: Ed25519PrivateKey, retired: list[str]) -> None:
    """Configure the processes' keys, as an operator does before a restart."""
    settings.LEDGER_SIGNING_KEY = ledger_format.private_key_text(signing)
    settings.LEDGER_PUBLIC_KEYS = retired
    ledger.signing_key.cache_clear()


@pytest.fixture
def key_a(settings):
    """Everything in the test's ledger is signed by key A until the switch."""
    use_keys(settings, KEY_A, [])
    yield KEY_A
    ledger.signing_key.cache_clear()


@pytest.fixture
def signed_by_a(key_a, production_release, administrator):
    """An organisation, a production request and a checkpoint, all signed by key A."""
    call_command("ledger_checkpoint", stdout=io.StringIO())
    return production_release


def rotate(*args: str) -> tuple[str, str]:
    """rotate_ledger_key as ada, the administrator: its (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "rotate_ledger_key", *args, "--by", "ada", "--reason", "yearly", stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


@pytest.fixture
def key_b_file(tmp_path) -> Path:
    return tmp_path / "secrets" / "ledger-signing-b.key"


@pytest.fixture
def rotated(signed_by_a, key_b_file) -> str:
    """The documented rotation to a generated key B written to a file: the command's stdout."""
    key_b_file.parent.mkdir()
    out = io.StringIO()
    call_command("rotate_ledger_key", *documented_rotation(key_b_file), stdout=out)
    return out.getvalue()


@pytest.fixture
def switched(settings, signed_by_a, rotated, key_b_file, approver) -> Ed25519PrivateKey:
    """The processes restarted with key B and A's public key kept; alice then decides (B signs)."""
    key_b = ledger_format.load_private_key(key_b_file.read_text().strip())
    use_keys(settings, key_b, [KEY_A_PUBLIC])
    factories.decide(signed_by_a, approver)
    return key_b


def verify_ledger(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_ledger", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def key_ids_in_order() -> list[str]:
    """The signing key of each entry, consecutive repeats collapsed: the hand-overs."""
    ids = list(LedgerEntry.objects.order_by("seq").values_list("key_id", flat=True))
    return [kid for i, kid in enumerate(ids) if i == 0 or ids[i - 1] != kid]


def checkpoint_documents(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("checkpoint-*.json"))]


def pem_of(*keys: Ed25519PrivateKey) -> str:
    return "".join(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        for key in keys
    )


# --- The hand-over ------------------------------------------------------------------------------


def test_rotation_writes_the_new_key_to_an_owner_only_file_and_prints_the_steps(
    rotated, key_b_file, ledger_checkpoints
):
    key_b = ledger_format.load_private_key(key_b_file.read_text().strip())
    key_b_id = ledger_format.key_id(key_b.public_key())
    entry = LedgerEntry.objects.get(kind="ledger.key_rotated")
    anchor = sorted(path.name for path in ledger_checkpoints.glob("checkpoint-*.json"))[-1]

    assert stat.S_IMODE(key_b_file.stat().st_mode) == 0o600
    assert key_b_file.read_text().strip() not in rotated
    assert rotated.splitlines() == [
        f"New ledger signing key: {key_b_id} (old key: {KEY_A_ID}).",
        f"Hand-over recorded: entry #{entry.seq} (ledger.key_rotated), signed by {KEY_A_ID}, "
        f"anchored by checkpoint {anchor}.",
        "Next, for web, worker and beat alike:",
        f"  1. Set LEDGER_SIGNING_KEY_FILE={key_b_file}",
        "  2. Keep the old public key so everything it signed still verifies:",
        f"     LEDGER_PUBLIC_KEYS={KEY_A_PUBLIC}",
        "  3. Restart them all, then run `manage.py verify_ledger` and "
        "`manage.py ledger_checkpoint`.",
        "  4. Destroy the old private key; give auditors the new /reports/ledger/public-key.pem.",
    ]


def test_the_old_key_signs_the_hand_over_naming_the_new_key_which_signs_what_follows(
    switched, ledger_checkpoints
):
    key_b_id = ledger_format.key_id(switched.public_key())
    entry = LedgerEntry.objects.get(kind="ledger.key_rotated")
    last = LedgerEntry.objects.order_by("seq").last()

    assert (entry.key_id, entry.actor, entry.subject) == (KEY_A_ID, "ada", f"ledger_key:{key_b_id}")
    assert entry.payload == {
        "old_key_id": KEY_A_ID,
        "new_key_id": key_b_id,
        "new_public_key": ledger_format.public_key_text(switched.public_key()),
        "reason": "yearly rotation",
    }
    # A signs everything up to and including the hand-over; B everything after it.
    assert key_ids_in_order() == [KEY_A_ID, key_b_id]
    assert LedgerEntry.objects.filter(seq__gt=entry.seq).exclude(key_id=key_b_id).count() == 0
    assert (last.key_id, last.seq > entry.seq) == (key_b_id, True)
    # The hand-over is anchored outside the database by a checkpoint of the old key.
    assert checkpoint_documents(ledger_checkpoints)[-1]["seq"] == entry.seq
    assert checkpoint_documents(ledger_checkpoints)[-1]["key_id"] == KEY_A_ID


def test_print_puts_only_the_private_key_on_stdout_and_the_steps_on_stderr(signed_by_a):
    out, err = rotate("--print")

    printed = ledger_format.load_private_key(out.strip())
    entry = LedgerEntry.objects.get(kind="ledger.key_rotated")
    assert out.count("\n") == 1
    assert entry.payload["new_key_id"] == ledger_format.key_id(printed.public_key())
    assert err.splitlines()[0] == (
        f"New ledger signing key: {entry.payload['new_key_id']} (old key: {KEY_A_ID})."
    )
    assert "  1. Set LEDGER_SIGNING_KEY=<the private key printed above>" in err.splitlines()


# --- Verifying across the rotation ----------------------------------------------------------------


def test_verify_ledger_passes_with_both_keys_and_the_old_keys_checkpoint_still_verifies(
    switched, ledger_checkpoints
):
    count = LedgerEntry.objects.count()
    rotation = LedgerEntry.objects.get(kind="ledger.key_rotated")
    anchor = sorted(ledger_checkpoints.glob("checkpoint-*.json"))[-1]

    before_new_checkpoint = verify_ledger()
    call_command("ledger_checkpoint", stdout=io.StringIO())
    every = verify_ledger("--all-checkpoints")

    signed = json.loads(anchor.read_text())
    assert before_new_checkpoint.splitlines()[1] == (
        f"Checkpoint OK: entry #{rotation.seq} matches {anchor.name} "
        f"(signed {signed['recorded_at']})."
    )
    assert before_new_checkpoint.startswith(f"Ledger OK: {count} entries verified in ")
    # A's checkpoints (before and at the hand-over) and B's first one all check.
    assert [doc["key_id"] for doc in checkpoint_documents(ledger_checkpoints)] == [
        KEY_A_ID,
        KEY_A_ID,
        ledger_format.key_id(switched.public_key()),
    ]
    assert every.splitlines()[1].endswith("; 3 checkpoints checked.")


def test_without_the_old_public_key_verify_ledger_says_which_key_to_add(settings, switched):
    count = LedgerEntry.objects.count()
    settings.LEDGER_PUBLIC_KEYS = []

    with pytest.raises(CommandError) as excinfo:
        verify_ledger()

    assert str(excinfo.value) == (
        f"Ledger verification FAILED at entry #1: signed with unknown key {KEY_A_ID}: add its "
        "public key to LEDGER_PUBLIC_KEYS (0 entries verified before it)."
    )
    assert LedgerEntry.objects.count() == count


def test_the_offline_verifier_passes_with_both_keys_and_names_the_missing_old_one(
    switched, tmp_path, ledger_checkpoints
):
    call_command("ledger_checkpoint", stdout=io.StringIO())
    export = tmp_path / "signoff-ledger.jsonl"
    call_command("export_ledger", output=str(export))
    both, new_only = tmp_path / "both.pem", tmp_path / "new-only.pem"
    both.write_text(ledger_export.public_keys_pem())
    new_only.write_text(pem_of(switched))
    key_b_id = ledger_format.key_id(switched.public_key())
    count = LedgerEntry.objects.count()

    passed = run(TOOL, "--public-key", both, export, "--checkpoint", ledger_checkpoints)
    failed = run(TOOL, "--public-key", new_only, export)

    assert ledger_export.public_keys_pem().splitlines()[0] == f"# current key {key_b_id}"
    assert f"# retired key {KEY_A_ID}" in ledger_export.public_keys_pem().splitlines()
    latest = sorted(ledger_checkpoints.glob("checkpoint-*.json"))[-1]
    assert (passed.returncode, passed.stdout) == (
        0,
        f"OK: {count} entries verified (public keys {', '.join(sorted([KEY_A_ID, key_b_id]))}); "
        f"3 match, the latest {latest} at entry #{count}\n",
    )
    assert (failed.returncode, failed.stdout) == (
        1,
        f"line 2: entry #1 signed by unknown key {KEY_A_ID} (not among the public keys given)\n",
    )


# --- Refusals -----------------------------------------------------------------------------------


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as excinfo:
        rotate(*args)
    return str(excinfo.value)


def test_rotating_to_the_current_key_is_refused_and_writes_nothing(signed_by_a, tmp_path):
    current = tmp_path / "current.key"
    current.write_text(ledger_format.private_key_text(KEY_A))
    count = LedgerEntry.objects.count()

    message = refused("--key-file", str(current))

    assert message == (
        f"Key rotation REFUSED: the new key is the current signing key ({KEY_A_ID}): there is "
        "nothing to rotate."
    )
    assert LedgerEntry.objects.count() == count


def test_rotating_back_to_a_retired_key_is_refused(settings, signed_by_a, tmp_path):
    retired = Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
    settings.LEDGER_PUBLIC_KEYS = [ledger_format.public_key_text(retired.public_key())]
    old = tmp_path / "old.key"
    old.write_text(ledger_format.private_key_text(retired))
    count = LedgerEntry.objects.count()

    message = refused("--key-file", str(old))

    assert message == (
        f"Key rotation REFUSED: key {ledger_format.key_id(retired.public_key())} is a retired "
        "key (in LEDGER_PUBLIC_KEYS), and a retired key never signs again."
    )
    assert LedgerEntry.objects.count() == count


def test_an_existing_file_is_never_overwritten_with_a_new_key(signed_by_a, tmp_path):
    existing = tmp_path / "ledger-signing.key"
    existing.write_text("the key in use\n")
    count = LedgerEntry.objects.count()

    message = refused("--output", str(existing))

    assert message == (
        f"Key rotation REFUSED: {existing} already exists: a new key is never written over an "
        "existing file."
    )
    assert existing.read_text() == "the key in use\n"
    assert LedgerEntry.objects.count() == count


def test_a_new_key_needs_somewhere_to_go(signed_by_a):
    count = LedgerEntry.objects.count()

    message = refused()

    assert message == (
        "Key rotation REFUSED: say where the new private key goes: --output PATH (a new file, "
        "mode 0600) or --print."
    )
    assert LedgerEntry.objects.count() == count


def test_only_an_administrator_rotates_the_key(signed_by_a, tmp_path):
    count = LedgerEntry.objects.count()
    output = tmp_path / "new.key"

    with pytest.raises(CommandError) as excinfo:
        call_command(
            "rotate_ledger_key", "--output", str(output), "--by", "alice", "--reason", "yearly"
        )

    assert str(excinfo.value) == "Key rotation REFUSED: 'alice' is not an active administrator."
    assert (LedgerEntry.objects.count(), output.exists()) == (count, False)


@pytest.mark.postgres
def test_a_damaged_ledger_is_not_handed_over_to_a_new_key(signed_by_a, ledger_checkpoints):
    [checkpoint] = sorted(ledger_checkpoints.glob("checkpoint-*.json"))
    anchored = json.loads(checkpoint.read_text())["seq"]
    as_superuser_without_triggers(empty_the_ledger(), reset_the_head())
    out = io.StringIO()

    with pytest.raises(CommandError) as excinfo:
        call_command(
            "rotate_ledger_key", "--print", "--by", "ada", "--reason", "yearly", stdout=out
        )

    assert str(excinfo.value) == (
        "Key rotation REFUSED: the ledger cannot be checkpointed: the ledger ends at entry #0, "
        f"before entry #{anchored} of the last checkpoint {checkpoint.name}; entries were "
        "removed. Run verify_ledger."
    )
    assert (out.getvalue(), LedgerEntry.objects.count()) == ("", 0)
    assert sorted(ledger_checkpoints.glob("checkpoint-*.json")) == [checkpoint]
