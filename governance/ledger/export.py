"""The ledger as an export for auditors: JSON lines, and its public keys as PEM.

One generator of lines serves both `manage.py export_ledger` and GET /reports/ledger.jsonl, so
the file a command writes and the file a browser downloads are the same bytes for the same chain
(tools/verify_ledger.py reads them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection
from django.utils import timezone

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry, LedgerHead

EXPORT_FORMAT = "signoff-ledger-export/1"


EXPORT_BATCH = 5000

# On PostgreSQL the lines are written by the database: the same fields, keys and values as
# `json.dumps(entry, sort_keys=True)` of `services.stored_entries` (a verifier parses them; the
# spacing differs), at several times the speed of building them in Python. `recorded_at` is
# printed as Python's isoformat(timespec="microseconds") of the UTC time, which is what the
# entry's hash covers.
LINE_SQL = f"""
SELECT seq, json_build_object(
    'actor', actor, 'entry_hash', entry_hash, 'key_id', key_id, 'kind', kind,
    'payload', payload, 'prev_hash', prev_hash,
    'recorded_at', to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    'seq', seq, 'signature', signature, 'subject', subject
)::text || E'\\n'
FROM {LedgerEntry._meta.db_table}
WHERE seq > %s AND seq <= %s
ORDER BY seq
LIMIT %s
"""


def export_lines() -> Iterator[str]:
    """The header line, then one signed entry a line, oldest first, each ending in a newline."""
    for batch in export_batches():
        yield from batch


def export_chunks() -> Iterator[str]:
    """The same text as `export_lines`, a batch of lines at a time: what a response streams."""
    for batch in export_batches():
        yield "".join(batch)


def export_batches() -> Iterator[list[str]]:
    """[header line], then lists of entry lines in order.

    The head is read once at the start and the export stops there, so entries appended while a
    long export streams never make it inconsistent with its header. Entries are read in keyset
    batches: memory stays flat whatever the ledger's size.
    """
    head = LedgerHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    keys = {kid: ledger_format.public_key_text(k) for kid, k in ledger.public_keys().items()}
    header = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "entries": head,
        "public_keys": keys,
    }
    yield [json.dumps(header) + "\n"]
    if not head:
        return
    if connection.vendor == "postgresql":
        yield from _database_lines(head)
        return
    batch = []
    for entry in ledger.stored_entries(through=head):
        batch.append(json.dumps(entry, sort_keys=True) + "\n")
        if len(batch) == EXPORT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _database_lines(head: int) -> Iterator[list[str]]:
    last = 0
    with connection.cursor() as cursor:
        while last < head:
            cursor.execute(LINE_SQL, [last, head, EXPORT_BATCH])
            rows = cursor.fetchall()
            if not rows:
                return
            yield [line for _, line in rows]
            last = rows[-1][0]


def export_file_name() -> str:
    return f"signoff-ledger-{timezone.now():%Y-%m-%d}.jsonl"


def public_keys_pem() -> str:
    """The current public key then each retired one, as PEM (SubjectPublicKeyInfo), each block
    preceded by a comment line naming it (RFC 7468 allows text outside the blocks)."""
    current = ledger.signing_key().public_key()
    current_id = ledger_format.key_id(current)
    blocks = [f"# current key {current_id}\n{_pem(current)}"]
    for encoded in getattr(settings, "LEDGER_PUBLIC_KEYS", []):
        retired = ledger_format.load_public_key(encoded)
        if ledger_format.key_id(retired) != current_id:
            blocks.append(f"# retired key {ledger_format.key_id(retired)}\n{_pem(retired)}")
    return "".join(blocks)


def _pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
