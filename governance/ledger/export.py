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
from django.utils import timezone

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerHead

EXPORT_FORMAT = "signoff-ledger-export/1"


def export_lines() -> Iterator[str]:
    """The header line, then one signed entry a line, oldest first, each ending in a newline.

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
    yield json.dumps(header) + "\n"
    if head:
        for entry in ledger.stored_entries(through=head):
            yield json.dumps(entry, sort_keys=True) + "\n"


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
