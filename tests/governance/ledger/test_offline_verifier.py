"""tools/verify_ledger.py, the offline verifier: run as an auditor runs it, alone in a folder
with `python -I`, over exports of a real ledger written through the ledger's services."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from governance.ledger import export as ledger_export
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import LedgerEntry

TOOL = Path(settings.BASE_DIR) / "tools" / "verify_ledger.py"
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


@pytest.fixture
def entries(production_release) -> list[LedgerEntry]:
    """The ledger after seeding an organisation and one production request."""
    rows = list(LedgerEntry.objects.order_by("seq"))
    assert len(rows) >= 5
    return rows


@pytest.fixture
def verifier(tmp_path) -> Path:
    """The verifier copied alone into an empty folder: nothing of Signoff is importable there."""
    folder = tmp_path / "auditor"
    folder.mkdir()
    return Path(shutil.copy(TOOL, folder / "verify_ledger.py"))


@pytest.fixture
def pem(tmp_path) -> Path:
    path = tmp_path / "signoff-ledger.pem"
    path.write_text(ledger_export.public_keys_pem())
    return path


@pytest.fixture
def export(entries, tmp_path) -> Path:
    path = tmp_path / "signoff-ledger.jsonl"
    call_command("export_ledger", output=str(path))
    return path


def run(verifier: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", str(verifier), *map(str, args)],
        cwd=verifier.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def resign(entry: dict, key: Ed25519PrivateKey) -> str:
    """The entry signed again by `key`, with its key id: what a forger without our key can do."""
    entry = {**entry, "key_id": ledger_format.key_id(key.public_key())}
    entry["signature"] = ledger_format.sign(key, entry["entry_hash"])
    return json.dumps(entry, sort_keys=True)


def rehash(entry: dict) -> dict:
    """The entry with its hash recomputed over its (changed) content, signature left as it was."""
    body = ledger_format.canonical_bytes(
        **{name: entry[name] for name in ledger_format.ENTRY_SIGNED_FIELDS}
    )
    return {**entry, "entry_hash": ledger_format.entry_hash(body)}


def key_id() -> str:
    return ledger_format.key_id(ledger.signing_key().public_key())


# --- An untouched export ----------------------------------------------------------------------


def test_an_untouched_export_verifies_with_the_published_key(entries, export, pem, verifier):
    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"OK: {len(entries)} entries verified (public keys {key_id()})\n",
        "",
    )
    header = json.loads(lines_of(export)[0])
    assert header["format"] == "signoff-ledger-export/1"
    assert header["entries"] == len(entries)
    assert list(header["public_keys"]) == [key_id()]
    assert len(lines_of(export)) == len(entries) + 1


def test_without_a_public_key_the_header_keys_are_used_with_a_warning(entries, export, verifier):
    result = run(verifier, export)

    assert result.returncode == 0
    assert result.stdout == f"OK: {len(entries)} entries verified (public keys {key_id()})\n"
    assert result.stderr.startswith("WARNING: no --public-key given")
    assert "trust the export itself" in result.stderr


def test_every_key_of_a_pem_file_is_accepted(entries, export, pem, verifier, settings, tmp_path):
    retired = OTHER_KEY.public_key()
    settings.LEDGER_PUBLIC_KEYS = [ledger_format.public_key_text(retired)]
    both = tmp_path / "both.pem"
    both.write_text(ledger_export.public_keys_pem())

    result = run(verifier, "--public-key", both, export)

    kids = sorted([key_id(), ledger_format.key_id(retired)])
    assert (result.returncode, result.stdout) == (
        0,
        f"OK: {len(entries)} entries verified (public keys {', '.join(kids)})\n",
    )
    assert both.read_text().startswith(f"# current key {key_id()}\n-----BEGIN PUBLIC KEY-----")
    assert f"# retired key {ledger_format.key_id(retired)}\n-----BEGIN" in both.read_text()


# --- Each kind of tampering, named by line and word ---------------------------------------------


def test_an_edited_payload_is_named_edited(entries, export, pem, verifier):
    lines = lines_of(export)
    second = json.loads(lines[2])
    second["payload"] = {**second["payload"], "rationale": "changed afterwards"}
    lines[2] = json.dumps(second, sort_keys=True)
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 3: entry #2 edited: its content does not match its hash\n",
    )


def test_an_edited_entry_with_a_recomputed_hash_breaks_its_signature(
    entries, export, pem, verifier
):
    lines = lines_of(export)
    third = rehash({**json.loads(lines[3]), "actor": "mallory"})
    lines[3] = json.dumps(third, sort_keys=True)
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 4: entry #3 has an invalid signature\n",
    )


def test_an_entry_re_signed_by_a_forger_breaks_the_next_link(entries, export, verifier, tmp_path):
    """Re-signing an edited entry with another key passes only if that key is trusted (here the
    forger's key is added to the header and the header is trusted); the next entry's link
    still names the original."""
    lines = lines_of(export)
    header = json.loads(lines[0])
    header["public_keys"][ledger_format.key_id(OTHER_KEY.public_key())] = (
        ledger_format.public_key_text(OTHER_KEY.public_key())
    )
    lines[0] = json.dumps(header)
    lines[2] = resign(rehash({**json.loads(lines[2]), "actor": "mallory"}), OTHER_KEY)
    write(export, lines)

    result = run(verifier, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 4: entry #3 edited: its link to the previous entry is broken: entry #2 (line 3) "
        "was changed\n",
    )


def test_a_deleted_line_is_named_deleted(entries, export, pem, verifier):
    lines = lines_of(export)
    del lines[3]
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 4: deleted: entry #3 is missing (this line holds entry #4 and the export never "
        "holds the missing one)\n",
    )


def test_a_deleted_last_line_is_named_by_the_header_count(entries, export, pem, verifier):
    write(export, lines_of(export)[:-1])

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        f"line {len(entries) + 1}: deleted: the export ends after entry #{len(entries) - 1} but "
        f"its header announces {len(entries)} entries (entries were removed from its end, or "
        "the download was cut short)\n",
    )


def test_a_forged_line_inserted_before_an_entry_is_named_inserted(entries, export, pem, verifier):
    lines = lines_of(export)
    forged = rehash({**json.loads(lines[3]), "payload": {"approved": True}})
    lines.insert(3, json.dumps(forged, sort_keys=True))
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert result.returncode == 1
    assert result.stdout == (
        "line 4: inserted: this line is not in the ledger (it claims to be entry #3, which "
        "follows at line 5, but its signature is invalid)\n"
    )


def test_a_repeated_line_is_named_inserted(entries, export, pem, verifier):
    lines = lines_of(export)
    lines.insert(4, lines[2])
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 5: inserted: this line is not in the ledger (entry #2 came already; entry #4 "
        "was expected)\n",
    )


def test_a_forged_line_with_a_later_seq_is_named_inserted(entries, export, pem, verifier):
    lines = lines_of(export)
    forged = rehash({**json.loads(lines[3]), "seq": 999})
    lines.insert(3, json.dumps(forged, sort_keys=True))
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 4: inserted: this line is not in the ledger (it claims to be entry #999 but its "
        "signature is invalid); entry #3 follows at line 5\n",
    )


def test_two_swapped_lines_are_named_reordered(entries, export, pem, verifier):
    lines = lines_of(export)
    lines[2], lines[3] = lines[3], lines[2]
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 3: reordered: entry #3 comes before entry #2, which is at line 4\n",
    )


def test_a_line_signed_by_another_key_names_the_unknown_key(entries, export, pem, verifier):
    lines = lines_of(export)
    lines[2] = resign(json.loads(lines[2]), OTHER_KEY)
    write(export, lines)

    result = run(verifier, "--public-key", pem, export)

    other = ledger_format.key_id(OTHER_KEY.public_key())
    assert (result.returncode, result.stdout) == (
        1,
        f"line 3: entry #2 signed by unknown key {other} (not among the public keys given)\n",
    )


def test_an_export_signed_by_a_key_other_than_the_given_one_fails(export, verifier, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(
        OTHER_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )

    result = run(verifier, "--public-key", other, export)

    assert (result.returncode, result.stdout) == (
        1,
        f"line 2: entry #1 signed by unknown key {key_id()} (not among the public keys given)\n",
    )


def test_a_malformed_line_is_not_a_ledger_entry(entries, export, pem, verifier):
    lines = lines_of(export)
    missing = json.loads(lines[4])
    del missing["signature"]
    write(export, [*lines[:4], json.dumps(missing), *lines[5:]])
    broken = export.with_name("broken.jsonl")
    write(broken, [*lines[:2], "{not json", *lines[3:]])

    result = run(verifier, "--public-key", pem, export)
    garbled = run(verifier, "--public-key", pem, broken)

    assert (result.returncode, result.stdout) == (
        1,
        "line 5: not a ledger entry (missing signature)\n",
    )
    assert garbled.returncode == 1
    assert garbled.stdout.startswith("line 3: not a ledger entry (not JSON: ")


def test_the_first_bad_line_is_named_even_when_a_malformed_one_follows(
    entries, export, pem, verifier
):
    lines = lines_of(export)
    second = json.loads(lines[2])
    second["kind"] = "decision.approved"
    write(export, [*lines[:2], json.dumps(second, sort_keys=True), "garbage", *lines[3:]])

    result = run(verifier, "--public-key", pem, export)

    assert (result.returncode, result.stdout) == (
        1,
        "line 3: entry #2 edited: its content does not match its hash\n",
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("[]", "line 1: not an export header (format is not signoff-ledger-export/1)\n"),
        ('{"public_keys": {}}', "line 1: not an export header (format is not "),
        (
            '{"format": "signoff-ledger-export/1", "entries": 3}',
            "line 1: not an export header (public_keys is not a mapping of keys)\n",
        ),
        ("garbage", "line 1: not an export header (not JSON: "),
    ],
)
def test_a_bad_header_is_named_on_line_1(export, pem, verifier, header, message):
    write(export, [header, *lines_of(export)[1:]])

    result = run(verifier, "--public-key", pem, export)

    assert result.returncode == 1
    assert result.stdout.startswith(message)


def test_a_bad_pem_file_is_refused(export, verifier, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    empty = tmp_path / "empty.pem"
    empty.write_text("# nothing here\n")

    bad = run(verifier, "--public-key", garbage, export)
    none = run(verifier, "--public-key", empty, export)

    assert bad.returncode == 1
    assert bad.stdout.startswith(f"--public-key {garbage}: key 1 is not valid PEM (")
    assert (none.returncode, none.stdout) == (
        1,
        f"--public-key {empty}: no PEM public key (BEGIN PUBLIC KEY) in it\n",
    )


# --- Checkpoints ------------------------------------------------------------------------------


def checkpoint() -> None:
    call_command("ledger_checkpoint", stdout=io.StringIO())


def only_checkpoint(folder: Path) -> tuple[Path, dict]:
    [path] = sorted(folder.glob("checkpoint-*.json"))
    return path, json.loads(path.read_text())


def test_the_export_is_checked_against_a_checkpoint_folder(
    entries, ledger_checkpoints, pem, verifier, tmp_path
):
    checkpoint()
    with transaction.atomic():
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})
    checkpoint()
    latest = sorted(ledger_checkpoints.glob("checkpoint-*.json"))[-1]
    export = tmp_path / "ledger.jsonl"
    call_command("export_ledger", output=str(export))

    result = run(verifier, "--public-key", pem, "--checkpoint", ledger_checkpoints, export)

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"OK: {len(entries) + 1} entries verified (public keys {key_id()}); 2 match, the "
        f"latest {latest} at entry #{len(entries) + 1}\n",
        "",
    )


def test_an_export_cut_below_the_checkpoint_is_shorter_than_the_checkpoint(
    entries, ledger_checkpoints, export, pem, verifier
):
    checkpoint()
    path, document = only_checkpoint(ledger_checkpoints)
    write(export, lines_of(export)[:-2])

    result = run(verifier, "--public-key", pem, "--checkpoint", path, export)

    last = len(entries)
    assert (result.returncode, result.stdout) == (
        1,
        f"line {last + 1}: the export is shorter than the checkpoint {path}: it ends at entry "
        f"#{last - 2} (line {last - 1}) but the checkpoint, signed {document['recorded_at']}, "
        f"covers entry #{last}, which would be at line {last + 1}: entries were removed\n",
    )


@pytest.mark.postgres
def test_a_rewritten_entry_at_the_checkpoint_differs_from_the_checkpoint(
    entries, ledger_checkpoints, pem, verifier, tmp_path
):
    """A forger holding the signing key rewrites the last entry: the chain verifies, the
    checkpoint taken before does not."""
    checkpoint()
    path, document = only_checkpoint(ledger_checkpoints)
    last = entries[-1]
    forged = rehash(
        {
            **next(ledger.stored_entries(after=last.seq - 1)),
            "payload": {**last.payload, "rationale": "forged"},
        }
    )
    signature = ledger_format.sign(ledger.signing_key(), forged["entry_hash"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE governance_ledgerentry SET payload = %s, entry_hash = %s, signature = %s "
            "WHERE seq = %s",
            [json.dumps(forged["payload"]), forged["entry_hash"], signature, last.seq],
        )
        cursor.execute("UPDATE governance_ledgerhead SET entry_hash = %s", [forged["entry_hash"]])
        cursor.execute("SET LOCAL session_replication_role = origin")
    export = tmp_path / "rewritten.jsonl"
    call_command("export_ledger", output=str(export))

    alone = run(verifier, "--public-key", pem, export)
    result = run(verifier, "--public-key", pem, "--checkpoint", path, export)

    assert alone.returncode == 0
    assert (result.returncode, result.stdout) == (
        1,
        f"line {last.seq + 1}: entry #{last.seq} differs from the checkpoint {path}, signed "
        f"{document['recorded_at']}: the chain was rewritten\n",
    )


def test_a_tampered_checkpoint_is_refused(entries, ledger_checkpoints, export, pem, verifier):
    checkpoint()
    path, document = only_checkpoint(ledger_checkpoints)
    forged = export.with_name(path.name)
    forged.write_text(json.dumps({**document, "seq": document["seq"] + 10}))

    result = run(
        verifier, "--public-key", pem, "--checkpoint", path, "--checkpoint", forged, export
    )

    assert (result.returncode, result.stdout) == (
        1,
        f"checkpoint {forged}: its signature is not valid (the checkpoint was altered or forged)\n",
    )


def test_an_empty_checkpoint_folder_is_refused(export, pem, verifier, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()

    result = run(verifier, "--public-key", pem, "--checkpoint", empty, export)

    assert (result.returncode, result.stdout) == (
        1,
        f"checkpoint folder {empty}: no checkpoint files in it\n",
    )


# --- In step with governance/ledger/format.py -------------------------------------------------


@pytest.fixture
def tool(monkeypatch):
    """The verifier's functions, imported from its file (registered so dataclasses work)."""
    spec = importlib.util.spec_from_file_location("offline_verify_ledger", TOOL)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_tool_computes_the_same_bytes_as_the_ledger(entries, export, tool):
    for line in lines_of(export)[1:]:
        entry = json.loads(line)
        fields = {name: entry[name] for name in ledger_format.ENTRY_SIGNED_FIELDS}
        assert tool.canonical_bytes(entry) == ledger_format.canonical_bytes(**fields)
    point = {"seq": 7, "entry_hash": "ab" * 32, "recorded_at": "2026-12-06T10:00:00+00:00"}
    assert tool.checkpoint_bytes(**point) == ledger_format.checkpoint_bytes(**point)
    assert tool.key_id(OTHER_KEY.public_key()) == ledger_format.key_id(OTHER_KEY.public_key())


@pytest.mark.parametrize("field", ["actor", "kind", "subject", "recorded_at", "payload"])
def test_both_verifiers_fail_the_same_export_at_the_same_entry(export, pem, verifier, field):
    lines = lines_of(export)
    entry = json.loads(lines[3])
    entry[field] = {"x": 1} if field == "payload" else entry[field] + "x"
    lines[3] = json.dumps(entry, sort_keys=True)
    write(export, lines)
    keys = ledger.public_keys()

    results = list(ledger_format.verify_entries(map(json.loads, lines[1:]), keys))
    offline = run(verifier, "--public-key", pem, export)

    assert results[-1] == ledger_format.Problem(
        3, "content does not match its hash (the entry was altered)"
    )
    assert (offline.returncode, offline.stdout) == (
        1,
        "line 4: entry #3 edited: its content does not match its hash\n",
    )
