"""The ledger's byte format and cryptography, free of Django so that an offline verifier can use it.

Each entry's hash is SHA-256 over the canonical JSON of its fields plus the previous entry's hash;
its signature is Ed25519 over that hash. Changing, dropping or reordering any entry breaks the chain
from that point on.

Dropping entries from the end leaves a shorter chain that is still valid, so checkpoints are kept
outside the database: each is a signed statement "the chain had `seq` entries, the last with hash
`entry_hash`, at `recorded_at`". A ledger shorter than a checkpoint, or differing at its sequence
number, has been cut or rewritten.
"""

# tools/verify_ledger.py, the offline verifier auditors download, reimplements the canonical
# bytes, hashes, signatures and checkpoint bytes below without importing this module, and MUST
# STAY IN STEP with it: a change here is a change there (tests/governance/ledger/
# test_offline_verifier.py runs both over the same export).

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_HASH = "0" * 64
# A stored entry's fields, in the order exports and evidence packs write them.
ENTRY_FIELDS = (
    "seq",
    "recorded_at",
    "kind",
    "subject",
    "actor",
    "payload",
    "prev_hash",
    "entry_hash",
    "key_id",
    "signature",
)
# The fields of an entry that its hash covers (canonical_bytes' arguments).
ENTRY_SIGNED_FIELDS = ("seq", "recorded_at", "kind", "subject", "actor", "payload", "prev_hash")


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


def private_key_text(private_key: Ed25519PrivateKey) -> str:
    """The form LEDGER_SIGNING_KEY takes: base64 of the raw 32 bytes."""
    return base64.b64encode(private_key.private_bytes_raw()).decode()


def sign(private_key: Ed25519PrivateKey, digest_hex: str) -> str:
    return private_key.sign(bytes.fromhex(digest_hex)).hex()


def unknown_key(key_id: str) -> str:
    """A key that is not configured: after a rotation, the retired key's public key is missing."""
    return f"signed with unknown key {key_id}: add its public key to LEDGER_PUBLIC_KEYS"


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a ledger: where, and what."""

    seq: int
    message: str

    def __str__(self) -> str:
        return f"entry #{self.seq}: {self.message}"


def verify_entries(
    entries: Iterable[dict],
    public_keys: dict[str, Ed25519PublicKey],
    *,
    after_seq: int = 0,
    after_hash: str = GENESIS_HASH,
) -> Iterator[Problem | int]:
    """Walk entries in order; yield each verified seq, or the first Problem and stop.

    An entry is a dict with the stored fields (seq, recorded_at, kind, subject, actor, payload,
    prev_hash, entry_hash, key_id, signature). By default the walk starts at the genesis; pass
    the seq and hash of an already trusted entry to check only what follows it.
    """
    expected_seq, prev = after_seq + 1, after_hash
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
        return unknown_key(entry["key_id"])
    try:
        public_key.verify(bytes.fromhex(entry["signature"]), bytes.fromhex(entry["entry_hash"]))
    except (InvalidSignature, ValueError):
        return "signature is not valid"
    return None


# --- Checkpoints --------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "signoff-ledger-checkpoint/1"
CHECKPOINT_FIELDS = ("seq", "entry_hash", "recorded_at", "key_id", "signature")


def checkpoint_bytes(*, seq: int, entry_hash: str, recorded_at: str) -> bytes:
    """The exact bytes a checkpoint signs. The format tag keeps them from ever being mistaken
    for an entry's signed bytes (a bare 32-byte hash)."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "seq": seq,
        "entry_hash": entry_hash,
        "recorded_at": recorded_at,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the chain held `seq` entries, the last hashing to `entry_hash`."""

    seq: int
    entry_hash: str
    recorded_at: str
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return checkpoint_bytes(
            seq=self.seq, entry_hash=self.entry_hash, recorded_at=self.recorded_at
        )

    def file_name(self) -> str:
        """One file per checkpoint, named so that names sort by seq and then by time."""
        stamp = datetime.fromisoformat(self.recorded_at).astimezone(UTC)
        return f"checkpoint-{self.seq:012d}-{stamp.strftime('%Y%m%dT%H%M%S%fZ')}.json"

    def to_json(self) -> str:
        return json.dumps({"format": CHECKPOINT_FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse a checkpoint file; ValueError names what is wrong with it."""
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is not {CHECKPOINT_FORMAT}")
        missing = [name for name in CHECKPOINT_FIELDS if name not in document]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        seq = document["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError("seq is not a positive integer")
        if not all(isinstance(document[name], str) for name in CHECKPOINT_FIELDS[1:]):
            raise ValueError("entry_hash, recorded_at, key_id and signature must be text")
        datetime.fromisoformat(document["recorded_at"])
        return cls(**{name: document[name] for name in CHECKPOINT_FIELDS})


def sign_checkpoint(
    private_key: Ed25519PrivateKey, *, seq: int, entry_hash: str, recorded_at: str
) -> Checkpoint:
    """A checkpoint of the entry `seq` with hash `entry_hash`, signed with the ledger's key."""
    signed = checkpoint_bytes(seq=seq, entry_hash=entry_hash, recorded_at=recorded_at)
    return Checkpoint(
        seq=seq,
        entry_hash=entry_hash,
        recorded_at=recorded_at,
        key_id=key_id(private_key.public_key()),
        signature=private_key.sign(signed).hex(),
    )


def checkpoint_signature_problem(
    checkpoint: Checkpoint, public_keys: dict[str, Ed25519PublicKey]
) -> str | None:
    """Why the checkpoint's signature cannot be trusted, or None when it verifies."""
    public_key = public_keys.get(checkpoint.key_id)
    if public_key is None:
        return unknown_key(checkpoint.key_id)
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return "its signature is not valid (the checkpoint was altered or forged)"
    return None


def checkpoint_problem(
    checkpoint: Checkpoint,
    public_keys: dict[str, Ed25519PublicKey],
    *,
    verified: int,
    hash_at_seq: str | None,
) -> str | None:
    """What a verified chain of `verified` entries contradicts in this checkpoint, if anything.

    `hash_at_seq` is the chain's own hash for the entry at the checkpoint's sequence number.
    The signature is checked first: an unsigned claim proves nothing either way.
    """
    problem = checkpoint_signature_problem(checkpoint, public_keys)
    if problem:
        return problem
    if verified < checkpoint.seq:
        return (
            f"the ledger holds {verified} entries but this checkpoint, signed "
            f"{checkpoint.recorded_at}, covers entry #{checkpoint.seq}: entries were removed"
        )
    if hash_at_seq != checkpoint.entry_hash:
        return (
            f"entry #{checkpoint.seq} differs from the one this checkpoint, signed "
            f"{checkpoint.recorded_at}, recorded: the chain was rewritten"
        )
    return None


def noting_hashes(entries: Iterable[dict], seqs: set[int], into: dict[int, str]) -> Iterator[dict]:
    """Pass entries through unchanged, noting in `into` the hash of each whose seq is in `seqs`.

    Lets a single streaming pass both verify the chain and answer checkpoints, without holding
    the whole ledger in memory.
    """
    for entry in entries:
        if entry["seq"] in seqs:
            into[entry["seq"]] = entry["entry_hash"]
        yield entry
