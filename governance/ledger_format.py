"""The ledger's byte format and cryptography, free of Django so that an offline verifier can use it.

Each entry's hash is SHA-256 over the canonical JSON of its fields plus the previous entry's hash;
its signature is Ed25519 over that hash. Changing, dropping or reordering any entry breaks the chain
from that point on.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_HASH = "0" * 64


def canonical_bytes(
    *,
    seq: int,
    recorded_at: str,
    kind: str,
    subject: str,
    actor: str,
    payload: dict,
    prev_hash: str,
) -> bytes:
    """The exact bytes that are hashed: sorted keys, no whitespace, UTF-8."""
    document = {
        "seq": seq,
        "recorded_at": recorded_at,
        "kind": kind,
        "subject": subject,
        "actor": actor,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(encoded: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))


def load_public_key(encoded: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))


def public_key_text(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(private_key: Ed25519PrivateKey, digest_hex: str) -> str:
    return private_key.sign(bytes.fromhex(digest_hex)).hex()


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a ledger: where, and what."""

    seq: int
    message: str

    def __str__(self) -> str:
        return f"entry #{self.seq}: {self.message}"


def verify_entries(
    entries: Iterable[dict], public_keys: dict[str, Ed25519PublicKey]
) -> Iterator[Problem | int]:
    """Walk entries in order; yield each verified seq, or the first Problem and stop.

    An entry is a dict with the stored fields (seq, recorded_at, kind, subject, actor, payload,
    prev_hash, entry_hash, key_id, signature).
    """
    expected_seq, prev = 1, GENESIS_HASH
    for entry in entries:
        seq = entry["seq"]
        problem = _check_entry(entry, expected_seq, prev, public_keys)
        if problem:
            yield Problem(seq, problem)
            return
        yield seq
        expected_seq, prev = seq + 1, entry["entry_hash"]


def _check_entry(
    entry: dict, expected_seq: int, prev: str, public_keys: dict[str, Ed25519PublicKey]
) -> str | None:
    if entry["seq"] != expected_seq:
        return f"expected sequence number {expected_seq} (an entry is missing or out of order)"
    if entry["prev_hash"] != prev:
        return "previous-hash link does not match the preceding entry"
    body = canonical_bytes(
        seq=entry["seq"],
        recorded_at=entry["recorded_at"],
        kind=entry["kind"],
        subject=entry["subject"],
        actor=entry["actor"],
        payload=entry["payload"],
        prev_hash=entry["prev_hash"],
    )
    if entry_hash(body) != entry["entry_hash"]:
        return "content does not match its hash (the entry was altered)"
    public_key = public_keys.get(entry["key_id"])
    if public_key is None:
        return f"signed with unknown key {entry['key_id']}"
    try:
        public_key.verify(bytes.fromhex(entry["signature"]), bytes.fromhex(entry["entry_hash"]))
    except (InvalidSignature, ValueError):
        return "signature is not valid"
    return None
