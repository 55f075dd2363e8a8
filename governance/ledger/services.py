"""Appending to and verifying the evidence ledger.

Appends must happen inside the caller's transaction, so an event is recorded if and only if the
change it describes is committed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import threading
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from governance.ledger import format as ledger_format
from governance.ledger.models import LedgerEntry, LedgerHead

VERIFY_BATCH = 5000


@functools.cache
def signing_key() -> Ed25519PrivateKey:
    """The configured key; in development, one generated once under var/ and then reused."""
    if settings.LEDGER_SIGNING_KEY:
        return ledger_format.load_private_key(settings.LEDGER_SIGNING_KEY)
    key_file = settings.LEDGER_KEY_FILE
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes_raw()
        key_file.write_text(base64.b64encode(raw).decode())
        key_file.chmod(0o600)
    return ledger_format.load_private_key(key_file.read_text().strip())


def public_keys() -> dict[str, Ed25519PublicKey]:
    """Keys accepted when verifying: the current one plus retired ones from LEDGER_PUBLIC_KEYS."""
    keys = [signing_key().public_key()]
    keys += [ledger_format.load_public_key(k) for k in getattr(settings, "LEDGER_PUBLIC_KEYS", [])]
    return {ledger_format.key_id(k): k for k in keys}


_deferred = threading.local()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold the entries appended inside the block and write them when it ends, in order, still
    inside the caller's transaction (enter it inside `transaction.atomic()`).

    The first write locks the head row until commit, which serialises every writer in the
    system; written last, entries hold that lock for the writes and the commit only, not for the
    work between them. A block inside another joins the outer one; an exception writes nothing.
    """
    if getattr(_deferred, "entries", None) is not None:
        yield
        return
    _deferred.entries = []
    try:
        yield
        entries = _deferred.entries
    finally:
        _deferred.entries = None
    _write_all(entries)


def append(*, kind: str, subject: str, actor: str, payload: dict) -> LedgerEntry | None:
    """Append one signed entry. Must run inside the transaction of the change it records.

    Inside `deferred()` the entry is written when that block ends (and None is returned)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger entries must be appended inside the recording transaction")
    entry = {"kind": kind, "subject": subject, "actor": actor, "payload": payload}
    pending = getattr(_deferred, "entries", None)
    if pending is not None:
        pending.append(entry)
        return None
    return _write(**entry)


def _write(*, kind: str, subject: str, actor: str, payload: dict) -> LedgerEntry:
    return _write_all([{"kind": kind, "subject": subject, "actor": actor, "payload": payload}])[0]


def _write_all(entries: list[dict]) -> list[LedgerEntry]:
    """Chain, sign and insert `entries` in order: one head lock and one insert whatever their
    number (a sweep escalating thousands of stages writes them all at once)."""
    if not entries:
        return []
    # The head row lock serialises appenders, so sequence numbers and hash links never fork.
    head, _ = LedgerHead.objects.select_for_update().get_or_create(pk=1)
    key = signing_key()
    key_id = ledger_format.key_id(key.public_key())
    seq, prev_hash = head.seq, head.entry_hash
    rows = []
    for entry in entries:
        seq += 1
        recorded_at = timezone.now()
        body = ledger_format.canonical_bytes(
            seq=seq,
            recorded_at=recorded_at.isoformat(timespec="microseconds"),
            prev_hash=prev_hash,
            **entry,
        )
        digest = ledger_format.entry_hash(body)
        rows.append(
            LedgerEntry(
                seq=seq,
                recorded_at=recorded_at,
                prev_hash=prev_hash,
                entry_hash=digest,
                key_id=key_id,
                signature=ledger_format.sign(key, digest),
                **entry,
            )
        )
        prev_hash = digest
    LedgerEntry.objects.bulk_create(rows)
    # The head moves one entry at a time (a trigger refuses jumps, invariant 11): one UPDATE
    # per entry, sent together.
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {LedgerHead._meta.db_table} SET seq = %s, entry_hash = %s WHERE id = 1",
            [(row.seq, row.entry_hash) for row in rows],
        )
    return rows


def stored_entries(*, after: int = 0, through: int | None = None) -> Iterator[dict]:
    """Entries after seq `after` (up to `through`) as the dict the verifier expects, streamed
    in keyset-paginated batches."""
    last = after
    entries = LedgerEntry.objects.order_by("seq")
    if through is not None:
        entries = entries.filter(seq__lte=through)
    while True:
        batch = list(
            entries.filter(seq__gt=last).values(*ledger_format.ENTRY_FIELDS)[:VERIFY_BATCH]
        )
        if not batch:
            return
        for row in batch:
            row["recorded_at"] = row["recorded_at"].isoformat(timespec="microseconds")
            yield row
        last = batch[-1]["seq"]


def verify() -> tuple[int, ledger_format.Problem | None]:
    """Verify the whole stored chain: (entries verified, first problem or None)."""
    count = 0
    for result in ledger_format.verify_entries(stored_entries(), public_keys()):
        if isinstance(result, ledger_format.Problem):
            return count, result
        count += 1
    head = LedgerHead.objects.filter(pk=1).first()
    if head and head.seq != count:
        return count, ledger_format.Problem(count + 1, "entries after this point are missing")
    return count, None
