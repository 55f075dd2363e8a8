"""The ledger verification's edges (`governance/ledger/format.py`, `services.py`) that mutation
testing showed no test pinned down; each test names the rule it holds."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from types import SimpleNamespace
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.format import Checkpoint
from governance.models import LedgerEntry

HASH = "ab" * 32


def checkpoint_document(**changes: object) -> dict:
    """A well-formed checkpoint file's fields, with `changes` applied (None drops a field)."""
    document = {
        "format": ledger_format.CHECKPOINT_FORMAT,
        "seq": 7,
        "entry_hash": HASH,
        "recorded_at": "2026-12-06T10:00:00.000000+00:00",
        "key_id": "0123456789abcdef",
        "signature": "cd" * 64,
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


def parse_error(document: object) -> str:
    with pytest.raises(ValueError) as excinfo:
        Checkpoint.from_json(json.dumps(document))
    return str(excinfo.value)


# --- Reading a checkpoint file: anything else is named for what it is -----------------------------


def test_a_well_formed_checkpoint_file_reads_back_as_written():
    checkpoint = Checkpoint.from_json(json.dumps(checkpoint_document()))

    assert checkpoint == Checkpoint(
        7, HASH, "2026-12-06T10:00:00.000000+00:00", "0123456789abcdef", "cd" * 64
    )


def test_a_checkpoint_of_another_format_is_not_read_even_when_its_fields_look_right():
    """A future format may mean something else by the same fields: never guess."""
    message = parse_error(checkpoint_document(format="signoff-ledger-checkpoint/2"))

    assert message == "format is not signoff-ledger-checkpoint/1"


def test_a_file_that_is_not_a_mapping_is_not_a_checkpoint():
    assert parse_error([checkpoint_document()]) == "format is not signoff-ledger-checkpoint/1"


def test_a_checkpoint_missing_fields_names_each_of_them():
    message = parse_error(checkpoint_document(seq=None, key_id=None))

    assert message == "missing seq, key_id"


@pytest.mark.parametrize(
    "seq", [0, -3, True, "7", 7.0], ids=["zero", "negative", "bool", "text", "float"]
)
def test_a_checkpoint_s_seq_must_be_a_positive_integer(seq):
    assert parse_error(checkpoint_document(seq=seq)) == "seq is not a positive integer"


@pytest.mark.parametrize("name", ["entry_hash", "recorded_at", "key_id", "signature"])
def test_every_hash_time_key_and_signature_of_a_checkpoint_must_be_text(name):
    message = parse_error(checkpoint_document(**{name: 12345}))

    assert message == "entry_hash, recorded_at, key_id and signature must be text"


def test_a_checkpoint_whose_time_is_not_a_time_is_refused():
    with pytest.raises(ValueError, match="Invalid isoformat string"):
        Checkpoint.from_json(json.dumps(checkpoint_document(recorded_at="yesterday")))


# --- Retired signing keys ------------------------------------------------------------------------


def test_entries_signed_with_a_retired_key_verify_once_its_public_key_is_listed(settings):
    """After a key rotation old entries stay valid: LEDGER_PUBLIC_KEYS lists the retired keys."""
    retired = Ed25519PrivateKey.generate()
    body = ledger_format.canonical_bytes(
        seq=1,
        recorded_at="2026-12-06T10:00:00.000000+00:00",
        kind="policy.published",
        subject="policy:default",
        actor="alice",
        payload={"version": 1},
        prev_hash=ledger_format.GENESIS_HASH,
    )
    digest = ledger_format.entry_hash(body)
    entry = {
        **json.loads(body),
        "entry_hash": digest,
        "key_id": ledger_format.key_id(retired.public_key()),
        "signature": ledger_format.sign(retired, digest),
    }

    settings.LEDGER_PUBLIC_KEYS = []
    unknown = list(ledger_format.verify_entries([entry], ledger.public_keys()))
    settings.LEDGER_PUBLIC_KEYS = [ledger_format.public_key_text(retired.public_key())]
    known = list(ledger_format.verify_entries([entry], ledger.public_keys()))

    assert [str(result) for result in unknown] == [
        f"entry #1: signed with unknown key {entry['key_id']}: add its public key to "
        "LEDGER_PUBLIC_KEYS"
    ]
    assert known == [1]
    assert len(ledger.public_keys()) == 2  # the current key and the retired one


def test_without_retired_keys_configured_only_the_current_key_verifies(settings):
    """A settings module that never heard of LEDGER_PUBLIC_KEYS still verifies the ledger."""
    del settings.LEDGER_PUBLIC_KEYS

    keys = ledger.public_keys()

    assert list(keys) == [ledger_format.key_id(ledger.signing_key().public_key())]


@pytest.mark.django_db
def test_an_entry_outside_a_transaction_is_refused_with_the_reason():
    """The transactional test in tests/governance/ledger shows it on a real connection; this
    one says the same words inside the test's own transaction, so mutation runs (which leave
    transactional tests out) see it too."""
    outside = SimpleNamespace(in_atomic_block=False)
    with (
        mock.patch.object(ledger.transaction, "get_connection", return_value=outside),
        pytest.raises(RuntimeError) as refused,
    ):
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})
    assert str(refused.value) == (
        "ledger entries must be appended inside the recording transaction"
    )
    assert not LedgerEntry.objects.filter(kind="test.event").exists()


@pytest.mark.django_db
def test_a_thread_that_never_deferred_entries_appends_directly():
    """Celery's and gunicorn's threads start without the deferred-entries mark of `deferred()`."""
    fresh: dict[str, bool] = {}
    thread = threading.Thread(
        target=lambda: fresh.update(marked=hasattr(ledger._deferred, "entries"))
    )
    thread.start()
    thread.join()
    assert fresh == {"marked": False}
    ledger._deferred.__dict__.pop("entries", None)  # this thread, as new as that one

    entry = ledger.append(kind="test.event", subject="test:1", actor="system", payload={})

    assert LedgerEntry.objects.get(kind="test.event") == entry


# --- The byte format the offline verifier recomputes -------------------------------------------


def test_canonical_bytes_keep_text_as_utf8_not_escapes():
    """The offline verifier and any other implementation hash the same bytes: names such as
    "Zoë" stay UTF-8, as the format says, never JSON's \\u escapes."""
    body = ledger_format.canonical_bytes(
        seq=1,
        recorded_at="2026-12-06T10:00:00.000000+00:00",
        kind="decision.recorded",
        subject="release:1",
        actor="zoë",
        payload={"rationale": "Geprüft"},
        prev_hash=HASH,
    )
    assert "zoë".encode() in body and "Geprüft".encode() in body
    assert b"\\u00" not in body


def test_a_broken_link_is_named_for_what_it_is():
    key = Ed25519PrivateKey.generate()
    keys = {ledger_format.key_id(key.public_key()): key.public_key()}
    entry = {"seq": 1, "prev_hash": "ab" * 32}

    (problem,) = ledger_format.verify_entries([entry], keys)

    assert str(problem) == "entry #1: previous-hash link does not match the preceding entry"


@pytest.fixture
def clock_in_new_york(monkeypatch):
    """The process's own time zone set elsewhere than UTC for the test, then restored."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_checkpoint_file_is_named_in_utc_and_written_indented(clock_in_new_york):
    """In UTC whatever the machine's own time zone."""
    checkpoint = Checkpoint(7, HASH, "2026-12-06T12:30:00.000001+02:00", "0123456789abcdef", "cd")

    assert checkpoint.file_name() == "checkpoint-000000000007-20261206T103000000001Z.json"
    assert checkpoint.to_json() == (
        json.dumps({"format": ledger_format.CHECKPOINT_FORMAT, **asdict(checkpoint)}, indent=2)
        + "\n"
    )


def test_a_checkpoint_signed_with_an_unknown_key_names_the_key():
    checkpoint = Checkpoint(7, HASH, "2026-12-06T10:00:00.000000+00:00", "feedc0ffee123456", "cd")

    assert ledger_format.checkpoint_signature_problem(checkpoint, {}) == (
        "signed with unknown key feedc0ffee123456: add its public key to LEDGER_PUBLIC_KEYS"
    )
