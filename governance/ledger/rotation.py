"""Rotating the ledger's signing key: a new key takes over, the old one keeps verifying.

The hand-over is itself evidence. The `ledger.key_rotated` entry is the old key's last act: it is
signed by the old key and names the new public key in full, so anyone holding the old public key
can check that the chain's owner endorsed the new one, and that the entries signed after it carry
that key's id. A checkpoint signed by the old key anchors the hand-over outside the database.

Switching the running processes to the new key is the operator's step (the key lives in their
secret store, not in the database): until every process restarts, entries may still be signed by
the old key, which stays valid through LEDGER_PUBLIC_KEYS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction

from governance.ledger import checkpoints
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry

ROTATED_KIND = "ledger.key_rotated"


class KeyRotationRefused(Exception):
    """The rotation cannot go ahead; the message (a sentence) says why."""


@dataclass(frozen=True)
class Rotation:
    """A recorded hand-over: the entry announcing it and the checkpoint anchoring it."""

    old_key: Ed25519PublicKey
    new_key: Ed25519PublicKey
    entry: LedgerEntry
    checkpoint: checkpoints.StoredCheckpoint | None  # never None: the entry is there to anchor


def retired_public_keys() -> list[str]:
    """The configured LEDGER_PUBLIC_KEYS (base64), as an operator extends them."""
    return list(getattr(settings, "LEDGER_PUBLIC_KEYS", []))


def prepare_rotation(new_key: Ed25519PrivateKey) -> None:
    """Refuse what must not be handed over, before anything is written anywhere.

    The key must be new: neither the current one nor a retired one (a retired key never signs
    again, so a leaked old key can never be brought back). The ledger must verify up to its head
    (the checkpoint written here checks it), so a damaged chain is reported instead of being
    handed over as if it were sound.
    """
    new_id = ledger_format.key_id(new_key.public_key())
    if new_id == ledger_format.key_id(ledger.signing_key().public_key()):
        raise KeyRotationRefused(
            f"the new key is the current signing key ({new_id}): there is nothing to rotate."
        )
    retired = {
        ledger_format.key_id(ledger_format.load_public_key(k)) for k in retired_public_keys()
    }
    if new_id in retired:
        raise KeyRotationRefused(
            f"key {new_id} is a retired key (in LEDGER_PUBLIC_KEYS), and a retired key never "
            "signs again."
        )
    _anchor()


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write the key as LEDGER_SIGNING_KEY expects it (base64 of the raw 32 bytes) to a new file
    readable by its owner only. O_EXCL: an existing file (perhaps the current key) is never
    replaced, and the file is never readable by others, not even for a moment."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyRotationRefused(
            f"{path} already exists: a new key is never written over an existing file."
        ) from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(ledger_format.private_key_text(key) + "\n")


def record_rotation(*, new_key: Ed25519PrivateKey, actor: str, reason: str) -> Rotation:
    """Append the hand-over, signed by the current (old) key, and anchor it in a checkpoint
    signed by that key too."""
    prepare_rotation(new_key)
    old_key = ledger.signing_key().public_key()
    with transaction.atomic():
        entry = ledger.append(
            kind=ROTATED_KIND,
            subject=f"ledger_key:{ledger_format.key_id(new_key.public_key())}",
            actor=actor,
            payload={
                "old_key_id": ledger_format.key_id(old_key),
                "new_key_id": ledger_format.key_id(new_key.public_key()),
                "new_public_key": ledger_format.public_key_text(new_key.public_key()),
                "reason": reason,
            },
        )
    return Rotation(
        old_key=old_key, new_key=new_key.public_key(), entry=entry, checkpoint=_anchor()
    )


def _anchor() -> checkpoints.StoredCheckpoint | None:
    """Checkpoint the head (None while the ledger is empty); refused on a damaged chain."""
    try:
        outcome = checkpoints.write_checkpoint()
    except checkpoints.CheckpointRefused as exc:
        raise KeyRotationRefused(f"the ledger cannot be checkpointed: {exc}") from exc
    return outcome.stored
