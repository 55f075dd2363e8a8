"""The evidence ledger: hash chain, signatures, database immutability, offline verification."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger import triggers
from governance.models import LedgerEntry, LedgerHead

PROTECTION = "governance.LedgerEntry:ledger_append_only"


def tamper(sql: str, *params: object) -> None:
    """Change ledger rows behind the application's back, as an attacker with SQL access could.

    On PostgreSQL the append-only trigger must be bypassed for that; elsewhere there is none.
    """
    with triggers.ignoring(PROTECTION), connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify_ledger() -> str:
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


@pytest.fixture
def entries(production_release) -> list[LedgerEntry]:
    """The ledger after seeding an organisation and one production request (roles, policy...)."""
    rows = list(LedgerEntry.objects.order_by("seq"))
    assert len(rows) >= 5
    return rows


def test_entries_are_hash_chained_signed_and_verify(entries):
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == ledger_format.GENESIS_HASH
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.entry_hash
    for entry in entries:
        body = ledger_format.canonical_bytes(
            seq=entry.seq,
            recorded_at=entry.recorded_at.isoformat(timespec="microseconds"),
            kind=entry.kind,
            subject=entry.subject,
            actor=entry.actor,
            payload=entry.payload,
            prev_hash=entry.prev_hash,
        )
        assert entry.entry_hash == ledger_format.entry_hash(body)
    head = LedgerHead.objects.get(pk=1)
    assert (head.seq, head.entry_hash) == (entries[-1].seq, entries[-1].entry_hash)

    assert verify_ledger().startswith(f"Ledger OK: {len(entries)} entries verified in ")


def test_the_request_is_recorded_with_its_frozen_plan(entries, production_release):
    requested = LedgerEntry.objects.get(kind="approval.requested")

    assert (requested.subject, requested.actor) == (f"release:{production_release.pk}", "ci-bot")
    assert requested.payload["digest"] == production_release.digest
    assert requested.payload["policy"] == "default@v1"
    assert [s["key"] for s in requested.payload["plan"]["stages"]] == ["service", "cab"]


def test_an_altered_entry_is_named_by_verify_ledger(entries):
    tamper("UPDATE governance_ledgerentry SET actor = %s WHERE seq = %s", "mallory", 3)

    with pytest.raises(CommandError) as excinfo:
        verify_ledger()

    assert str(excinfo.value) == (
        "Ledger verification FAILED at entry #3: content does not match its hash "
        "(the entry was altered) (2 entries verified before it)."
    )


def test_an_altered_entry_with_a_recomputed_hash_fails_its_signature(entries):
    entry = entries[2]
    forged_payload = {**entry.payload, "reason": "forged"}
    body = ledger_format.canonical_bytes(
        seq=entry.seq,
        recorded_at=entry.recorded_at.isoformat(timespec="microseconds"),
        kind=entry.kind,
        subject=entry.subject,
        actor=entry.actor,
        payload=forged_payload,
        prev_hash=entry.prev_hash,
    )
    tamper(
        "UPDATE governance_ledgerentry SET payload = %s, entry_hash = %s WHERE seq = %s",
        json.dumps(forged_payload),
        ledger_format.entry_hash(body),
        entry.seq,
    )

    with pytest.raises(
        CommandError,
        match=r"^Ledger verification FAILED at entry #3: "
        r"signature is not valid \(2 entries verified",
    ):
        verify_ledger()


def test_a_deleted_middle_entry_is_detected(entries):
    tamper("DELETE FROM governance_ledgerentry WHERE seq = %s", 3)

    with pytest.raises(CommandError) as excinfo:
        verify_ledger()

    assert str(excinfo.value) == (
        "Ledger verification FAILED at entry #4: expected sequence number 3 "
        "(an entry is missing or out of order) (2 entries verified before it)."
    )


def test_a_deleted_last_entry_is_detected(entries):
    last = entries[-1].seq
    tamper("DELETE FROM governance_ledgerentry WHERE seq = %s", last)

    with pytest.raises(CommandError) as excinfo:
        verify_ledger()

    assert str(excinfo.value) == (
        f"Ledger verification FAILED at entry #{last}: entries after this point are missing "
        f"({last - 1} entries verified before it)."
    )


@pytest.mark.postgres
def test_database_refuses_to_update_a_ledger_entry(entries):
    with (
        pytest.raises(DatabaseError, match="pgtrigger: Cannot update or delete rows"),
        transaction.atomic(),
    ):
        LedgerEntry.objects.filter(seq=2).update(actor="mallory")

    assert LedgerEntry.objects.get(seq=2).actor == entries[1].actor
    assert verify_ledger().startswith(f"Ledger OK: {len(entries)} entries")


@pytest.mark.postgres
def test_database_refuses_to_save_over_a_ledger_entry(entries):
    entry = LedgerEntry.objects.get(seq=2)
    entry.payload = {"rewritten": True}

    with (
        pytest.raises(DatabaseError, match="pgtrigger: Cannot update or delete rows"),
        transaction.atomic(),
    ):
        entry.save()

    assert LedgerEntry.objects.get(seq=2).payload == entries[1].payload


@pytest.mark.postgres
def test_database_refuses_to_delete_ledger_entries(entries):
    with (
        pytest.raises(DatabaseError, match="pgtrigger: Cannot update or delete rows"),
        transaction.atomic(),
    ):
        LedgerEntry.objects.filter(seq__gte=2).delete()

    assert LedgerEntry.objects.count() == len(entries)


# --- The chain cannot be shortened or its head moved anywhere but forward (invariant 11) ---------


def head_state() -> tuple[int, str]:
    head = LedgerHead.objects.get(pk=1)
    return head.seq, head.entry_hash


def insert_entry(seq: int, *, prev_hash: str, entry_hash: str) -> None:
    """Insert a raw entry row: the database allows inserts; linking one in is the head's job."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO governance_ledgerentry (seq, recorded_at, kind, subject, actor, payload,"
            " prev_hash, entry_hash, key_id, signature) VALUES (%s, now(), 'test.raw', 'test:1',"
            " '', '{}', %s, %s, '', '')",
            [seq, prev_hash, entry_hash],
        )


def run_refused(sql: str, *params: object) -> None:
    """Run SQL as the table owner would, inside a savepoint the refusal rolls back."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.postgres
def test_database_refuses_to_truncate_the_ledger(entries):
    with pytest.raises(DatabaseError, match="ledger entries are append-only: TRUNCATE"):
        run_refused("TRUNCATE governance_ledgerentry")

    assert LedgerEntry.objects.count() == len(entries)
    assert head_state() == (entries[-1].seq, entries[-1].entry_hash)


@pytest.mark.postgres
def test_database_refuses_to_reset_the_ledger_head(entries):
    with pytest.raises(
        DatabaseError, match=r"ledger head only moves forward one entry: #\d+ to #0"
    ):
        run_refused(
            "UPDATE governance_ledgerhead SET seq = 0, entry_hash = %s",
            ledger_format.GENESIS_HASH,
        )

    assert head_state() == (entries[-1].seq, entries[-1].entry_hash)
    assert verify_ledger().startswith(f"Ledger OK: {len(entries)} entries")


@pytest.mark.postgres
def test_database_refuses_to_move_the_head_back_by_one(entries):
    previous = entries[-2]

    with (
        pytest.raises(DatabaseError, match="ledger head only moves forward one entry"),
        transaction.atomic(),
    ):
        LedgerHead.objects.filter(pk=1).update(seq=previous.seq, entry_hash=previous.entry_hash)

    assert head_state() == (entries[-1].seq, entries[-1].entry_hash)


@pytest.mark.postgres
def test_database_refuses_to_move_the_head_forward_by_two(entries):
    last = entries[-1]
    insert_entry(last.seq + 1, prev_hash=last.entry_hash, entry_hash="1" * 64)
    insert_entry(last.seq + 2, prev_hash="1" * 64, entry_hash="2" * 64)

    with pytest.raises(DatabaseError, match="ledger head only moves forward one entry"):
        run_refused("UPDATE governance_ledgerhead SET seq = seq + 2, entry_hash = %s", "2" * 64)

    assert head_state() == (last.seq, last.entry_hash)


@pytest.mark.postgres
def test_database_refuses_to_move_the_head_to_a_wrong_hash(entries):
    last = entries[-1]

    with pytest.raises(DatabaseError, match=r"ledger head must move to entry #\d+ chained to it"):
        run_refused("UPDATE governance_ledgerhead SET seq = seq + 1, entry_hash = %s", "f" * 64)

    assert head_state() == (last.seq, last.entry_hash)


@pytest.mark.postgres
def test_database_refuses_to_move_the_head_to_an_entry_not_chained_to_it(entries):
    last = entries[-1]
    stray = "e" * 64
    insert_entry(last.seq + 1, prev_hash="d" * 64, entry_hash=stray)

    with pytest.raises(DatabaseError, match="ledger head must move to entry"):
        run_refused("UPDATE governance_ledgerhead SET seq = seq + 1, entry_hash = %s", stray)

    assert head_state() == (last.seq, last.entry_hash)


@pytest.mark.postgres
def test_database_refuses_to_delete_or_truncate_the_ledger_head(entries):
    with pytest.raises(DatabaseError, match="pgtrigger: Cannot delete rows"):
        run_refused("DELETE FROM governance_ledgerhead")
    with pytest.raises(DatabaseError, match="ledger head cannot be removed: TRUNCATE"):
        run_refused("TRUNCATE governance_ledgerhead")

    assert head_state() == (entries[-1].seq, entries[-1].entry_hash)


@pytest.mark.postgres
def test_database_refuses_a_second_ledger_head(entries):
    with pytest.raises(DatabaseError, match="the ledger has one head, row 1, starting at #0"):
        run_refused(
            "INSERT INTO governance_ledgerhead (id, seq, entry_hash) VALUES (2, 0, %s)",
            ledger_format.GENESIS_HASH,
        )

    assert list(LedgerHead.objects.values_list("pk", "seq")) == [(1, entries[-1].seq)]


@pytest.mark.postgres
def test_appends_still_move_the_head_forward_one_entry_at_a_time(entries):
    with transaction.atomic():
        first = ledger.append(kind="test.one", subject="test:1", actor="system", payload={})
        second = ledger.append(kind="test.two", subject="test:2", actor="system", payload={"n": 2})

    assert (first.seq, second.seq) == (entries[-1].seq + 1, entries[-1].seq + 2)
    assert (first.prev_hash, second.prev_hash) == (entries[-1].entry_hash, first.entry_hash)
    assert head_state() == (second.seq, second.entry_hash)
    assert verify_ledger().startswith(f"Ledger OK: {len(entries) + 2} entries")


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError) as excinfo:
        ledger.append(kind="test.event", subject="test:1", actor="system", payload={})

    assert str(excinfo.value) == (
        "ledger entries must be appended inside the recording transaction"
    )
    assert LedgerEntry.objects.count() == 0


def test_deferred_appends_are_written_in_order_when_the_block_ends(db):
    with transaction.atomic(), ledger.deferred():
        assert ledger.append(kind="a", subject="s", actor="x", payload={}) is None
        with ledger.deferred():  # joins the outer block
            ledger.append(kind="b", subject="s", actor="x", payload={})
        assert LedgerEntry.objects.count() == 0  # nothing written, so the head is not locked yet
        ledger.append(kind="c", subject="s", actor="x", payload={})

    assert list(LedgerEntry.objects.order_by("seq").values_list("kind", flat=True)) == [
        "a",
        "b",
        "c",
    ]
    assert ledger.verify() == (3, None)


def test_deferred_appends_are_dropped_with_a_failing_block(db):
    with pytest.raises(ValueError), transaction.atomic(), ledger.deferred():
        ledger.append(kind="a", subject="s", actor="x", payload={})
        raise ValueError("the change fails")

    assert LedgerEntry.objects.count() == 0
    with transaction.atomic():  # and the next append is immediate again
        ledger.append(kind="b", subject="s", actor="x", payload={})
    assert LedgerEntry.objects.count() == 1
