#!/usr/bin/env python3
"""Verify a Signoff ledger export offline, with Python and the `cryptography` package only.

    python verify_ledger.py --public-key signoff-ledger.pem signoff-ledger.jsonl \\
        [--checkpoint CHECKPOINT_FILE_OR_FOLDER]

--public-key (repeatable) names a PEM file holding the ledger's Ed25519 public keys, obtained
independently of the export (GET /reports/ledger/public-key.pem, or from whoever keeps the
signing key); every key in it is accepted (the current one and retired ones). Without it the
keys in the export's own header are used, which proves nothing against whoever wrote the file.
--checkpoint (repeatable: a checkpoint file or a folder of them, taken from the checkpoint store
rather than from Signoff) also proves that the export was not cut short or rewritten since.

Exit status 0 and one summary line when everything verifies; otherwise 1 and the first problem,
as `line N: ...` (N counts the file's lines from 1, the header being line 1).

This file is self-contained on purpose: an auditor can read all of it and run it anywhere.
"""

# The canonical bytes, hashes, signatures and checkpoint bytes below reimplement
# governance/ledger/format.py and MUST STAY IN STEP with it: a change to one is a change to
# both (tests/governance/ledger/test_offline_verifier.py runs both over the same export).

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

EXPORT_FORMAT = "signoff-ledger-export/1"
CHECKPOINT_FORMAT = "signoff-ledger-checkpoint/1"
GENESIS_HASH = "0" * 64
ENTRY_FIELDS = {
    "seq": int,
    "recorded_at": str,
    "kind": str,
    "subject": str,
    "actor": str,
    "payload": dict,
    "prev_hash": str,
    "entry_hash": str,
    "key_id": str,
    "signature": str,
}
CHECKPOINT_FIELDS = ("seq", "entry_hash", "recorded_at", "key_id", "signature")
PEM_BLOCK = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s.*?-----END PUBLIC KEY-----", re.DOTALL | re.ASCII
)
HEADER_WARNING = (
    "WARNING: no --public-key given, so the signatures are checked against the keys in the "
    "export's own header: whoever wrote the file chose them. Pass the ledger's public key "
    "(GET /reports/ledger/public-key.pem) for a check that does not trust the export itself."
)


EDITED = ("edited: its content does not match its hash", "its content does not match its hash")


class Failure(Exception):
    """Verification failed; the message is what to print."""


# --- The ledger's byte format (same as governance/ledger/format.py) -------------------------------


def canonical_bytes(entry: dict) -> bytes:
    """The exact bytes that are hashed: sorted keys, no whitespace, UTF-8."""
    document = {
        "seq": entry["seq"],
        "recorded_at": entry["recorded_at"],
        "kind": entry["kind"],
        "subject": entry["subject"],
        "actor": entry["actor"],
        "payload": entry["payload"],
        "prev_hash": entry["prev_hash"],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_bytes(*, seq: int, entry_hash: str, recorded_at: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "seq": seq,
        "entry_hash": entry_hash,
        "recorded_at": recorded_at,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def signature_valid(public_key: Ed25519PublicKey, signature_hex: str, signed: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), signed)
    except (InvalidSignature, ValueError):
        return False
    return True


def entry_problem(entry: dict, keys: dict[str, Ed25519PublicKey]) -> tuple[str, str] | None:
    """Why an entry does not verify on its own, or None: (what follows "entry #N " in the
    message, the same as a clause about a line that is not in the ledger)."""
    if hashlib.sha256(canonical_bytes(entry)).hexdigest() != entry["entry_hash"]:
        return EDITED
    kid = entry["key_id"]
    if kid not in keys:
        unknown = f"unknown key {kid}"
        return (
            f"signed by {unknown} (not among the public keys given)",
            f"it is signed by {unknown}",
        )
    if not signature_valid(keys[kid], entry["signature"], bytes.fromhex(entry["entry_hash"])):
        return "has an invalid signature", "its signature is invalid"
    return None


# --- Reading the inputs ---------------------------------------------------------------------------


def load_public_keys(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 key in the PEM files (a file may hold the current and retired keys)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise Failure(f"--public-key {path}: cannot be read ({exc.strerror})") from exc
        blocks = PEM_BLOCK.findall(text)
        if not blocks:
            raise Failure(f"--public-key {path}: no PEM public key (BEGIN PUBLIC KEY) in it")
        for number, block in enumerate(blocks, start=1):
            try:
                public_key = load_pem_public_key(block.encode())
            except ValueError as exc:
                raise Failure(
                    f"--public-key {path}: key {number} is not valid PEM ({exc})"
                ) from exc
            if not isinstance(public_key, Ed25519PublicKey):
                raise Failure(f"--public-key {path}: key {number} is not an Ed25519 key")
            keys[key_id(public_key)] = public_key
    return keys


def read_header(line: str) -> dict:
    """The export's first line; Failure names what is wrong with it."""
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise Failure(f"line 1: not an export header (not JSON: {exc})") from exc
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise Failure(f"line 1: not an export header (format is not {EXPORT_FORMAT})")
    keys, entries = header.get("public_keys"), header.get("entries")
    if not isinstance(keys, dict) or not all(isinstance(k, str) for k in keys.values()):
        raise Failure("line 1: not an export header (public_keys is not a mapping of keys)")
    if not isinstance(entries, int) or isinstance(entries, bool) or entries < 0:
        raise Failure("line 1: not an export header (entries is not a count)")
    return header


def header_keys(header: dict) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for kid, encoded in header["public_keys"].items():
        try:
            public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))
        except ValueError as exc:
            raise Failure(f"line 1: public key {kid} is not a raw Ed25519 key ({exc})") from exc
        keys[key_id(public_key)] = public_key
    return keys


def parse_entry(text: str) -> dict:
    """A line as an entry; ValueError says why it is not one."""
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    missing = [name for name in ENTRY_FIELDS if name not in entry]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for name, kind in ENTRY_FIELDS.items():
        if not isinstance(entry[name], kind) or isinstance(entry[name], bool):
            raise ValueError(f"{name} is not {'an integer' if kind is int else kind.__name__}")
    return entry


@dataclass(frozen=True)
class Line:
    number: int
    entry: dict


class Lines:
    """The export's entry lines in order, with one line of look-ahead; memory stays flat."""

    def __init__(self, handle, path: str) -> None:
        self._numbered = enumerate(handle, start=2)
        self._peeked: Line | None = None
        self.path = path

    def __iter__(self) -> Iterator[Line]:
        while True:
            line = self.peek()
            if line is None:
                return
            self._peeked = None
            yield line

    def peek(self) -> Line | None:
        if self._peeked is None:
            for number, text in self._numbered:
                try:
                    self._peeked = Line(number, parse_entry(text))
                except ValueError as exc:
                    raise Failure(f"line {number}: not a ledger entry ({exc})") from exc
                break
        return self._peeked


def find_seq(path: str, seq: int, after_line: int) -> int | None:
    """The number of the first line after `after_line` holding entry #seq (a second pass)."""
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if number <= after_line:
                continue
            try:
                found = json.loads(text)
            except ValueError:
                continue
            if isinstance(found, dict) and found.get("seq") == seq:
                return number
    return None


# --- Walking the chain ----------------------------------------------------------------------------


@dataclass
class Walk:
    """What a walk over the export found: entries verified, and the hashes checkpoints ask for."""

    count: int = 0
    prev_hash: str = GENESIS_HASH
    prev_line: int = 1
    # seq -> (line number, entry hash) of the entries that checkpoints name
    hashes: dict[int, tuple[int, str]] = field(default_factory=dict)


def walk(lines: Lines, keys: dict[str, Ed25519PublicKey], wanted: set[int]) -> Walk:
    """Verify every entry in order; Failure at the first line that is wrong."""
    state = Walk()
    for line in lines:
        entry, expected = line.entry, state.count + 1
        if entry["seq"] != expected:
            raise Failure(out_of_sequence(lines, line, expected, keys))
        problem = link_problem(entry, state) or entry_problem(entry, keys)
        if problem:
            raise Failure(misfit(lines, line, state, problem))
        if entry["seq"] in wanted:
            state.hashes[entry["seq"]] = (line.number, entry["entry_hash"])
        state.count, state.prev_hash, state.prev_line = expected, entry["entry_hash"], line.number
    return state


def link_problem(entry: dict, state: Walk) -> tuple[str, str] | None:
    if entry["prev_hash"] == state.prev_hash:
        return None
    if hashlib.sha256(canonical_bytes(entry)).hexdigest() != entry["entry_hash"]:
        return EDITED
    return (
        f"edited: its link to the previous entry is broken: entry #{state.count} "
        f"(line {state.prev_line}) was changed",
        f"it does not link to entry #{state.count}",
    )


def misfit(lines: Lines, line: Line, state: Walk, problem: tuple[str, str]) -> str:
    """The message for an entry with the expected seq that does not verify: an intruder when
    the next line carries the same seq and links where this one does not, else its own fault."""
    seq = line.entry["seq"]
    try:
        following = lines.peek()
    except Failure:  # a malformed next line is reported when the walk reaches it
        following = None
    if (
        following is not None
        and following.entry["seq"] == seq
        and following.entry["prev_hash"] == state.prev_hash
        and hashlib.sha256(canonical_bytes(following.entry)).hexdigest()
        == following.entry["entry_hash"]
    ):
        return (
            f"line {line.number}: inserted: this line is not in the ledger (it claims to be "
            f"entry #{seq}, which follows at line {following.number}, but {problem[1]})"
        )
    return f"line {line.number}: entry #{seq} {problem[0]}"


def out_of_sequence(
    lines: Lines, line: Line, expected: int, keys: dict[str, Ed25519PublicKey]
) -> str:
    """Name what a line with the wrong seq means: an intruder, a moved entry or a gap."""
    seq, number = line.entry["seq"], line.number
    if seq < expected:
        return (
            f"line {number}: inserted: this line is not in the ledger (entry #{seq} came "
            f"already; entry #{expected} was expected)"
        )
    later = find_seq(lines.path, expected, number)
    own = entry_problem(line.entry, keys)
    if later is not None and own is None:
        return (
            f"line {number}: reordered: entry #{seq} comes before entry #{expected}, "
            f"which is at line {later}"
        )
    if later is not None:
        return (
            f"line {number}: inserted: this line is not in the ledger (it claims to be entry "
            f"#{seq} but {own[1]}); entry #{expected} follows at line {later}"
        )
    missing = f"#{expected}" if seq == expected + 1 else f"#{expected} to #{seq - 1}"
    return (
        f"line {number}: deleted: entry {missing} is missing (this line holds entry #{seq} "
        "and the export never holds the missing one)"
    )


# --- Checkpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    path: str
    seq: int
    entry_hash: str
    recorded_at: str
    key_id: str
    signature: str


def load_checkpoints(paths: list[str]) -> list[Checkpoint]:
    """Every checkpoint named by files and folders, ordered by seq and time (latest last)."""
    files: list[Path] = []
    for given in map(Path, paths):
        found = sorted(given.glob("checkpoint-*.json")) if given.is_dir() else [given]
        if not found:
            raise Failure(f"checkpoint folder {given}: no checkpoint files in it")
        files += found
    loaded = [read_checkpoint(path) for path in files]
    return sorted(loaded, key=lambda checkpoint: (checkpoint.seq, checkpoint.recorded_at))


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Failure(f"checkpoint {path}: not a checkpoint ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise Failure(f"checkpoint {path}: not a checkpoint (format is not {CHECKPOINT_FORMAT})")
    missing = [name for name in CHECKPOINT_FIELDS if name not in document]
    if missing:
        raise Failure(f"checkpoint {path}: not a checkpoint (missing {', '.join(missing)})")
    seq = document["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise Failure(f"checkpoint {path}: not a checkpoint (seq is not a positive integer)")
    if not all(isinstance(document[name], str) for name in CHECKPOINT_FIELDS[1:]):
        raise Failure(f"checkpoint {path}: not a checkpoint (fields must be text)")
    return Checkpoint(str(path), **{name: document[name] for name in CHECKPOINT_FIELDS})


def check_checkpoint(checkpoint: Checkpoint, keys: dict, state: Walk) -> None:
    """The checkpoint must be validly signed and the export must reach it unchanged."""
    public_key = keys.get(checkpoint.key_id)
    if public_key is None:
        raise Failure(f"checkpoint {checkpoint.path}: signed by unknown key {checkpoint.key_id}")
    signed = checkpoint_bytes(
        seq=checkpoint.seq, entry_hash=checkpoint.entry_hash, recorded_at=checkpoint.recorded_at
    )
    if not signature_valid(public_key, checkpoint.signature, signed):
        raise Failure(
            f"checkpoint {checkpoint.path}: its signature is not valid (the checkpoint was "
            "altered or forged)"
        )
    if state.count < checkpoint.seq:
        raise Failure(
            f"line {checkpoint.seq + 1}: the export is shorter than the checkpoint "
            f"{checkpoint.path}: it ends at entry #{state.count} (line {state.count + 1}) but "
            f"the checkpoint, signed {checkpoint.recorded_at}, covers entry #{checkpoint.seq}, "
            f"which would be at line {checkpoint.seq + 1}: entries were removed"
        )
    number, found = state.hashes[checkpoint.seq]
    if found != checkpoint.entry_hash:
        raise Failure(
            f"line {number}: entry #{checkpoint.seq} differs from the checkpoint "
            f"{checkpoint.path}, signed {checkpoint.recorded_at}: the chain was rewritten"
        )


# --- The command ----------------------------------------------------------------------------------


def verify(export: str, key_files: list[str], checkpoint_paths: list[str]) -> str:
    """Verify the export; the summary line, or Failure with the first problem."""
    given_keys = load_public_keys(key_files)
    checkpoints = load_checkpoints(checkpoint_paths)
    try:
        handle = open(export, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise Failure(f"{export}: cannot be read ({exc.strerror})") from exc
    with handle:
        header = read_header(handle.readline())
        keys = given_keys or header_keys(header)
        lines = Lines(handle, export)
        state = walk(lines, keys, {checkpoint.seq for checkpoint in checkpoints})
    for checkpoint in checkpoints:
        check_checkpoint(checkpoint, keys, state)
    if state.count < header["entries"]:
        raise Failure(
            f"line {state.count + 2}: deleted: the export ends after entry #{state.count} but "
            f"its header announces {header['entries']} entries (entries were removed from its "
            "end, or the download was cut short)"
        )
    return summary(state.count, checkpoints, keys)


def summary(count: int, checkpoints: list[Checkpoint], keys: dict) -> str:
    checked = f"OK: {count} entries verified (public keys {', '.join(sorted(keys))})"
    if not checkpoints:
        return checked
    latest = checkpoints[-1]
    matched = "1 checkpoint matches" if len(checkpoints) == 1 else f"{len(checkpoints)} match"
    return f"{checked}; {matched}, the latest {latest.path} at entry #{latest.seq}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Verify a Signoff ledger export offline.",
        epilog="Exit status: 0 verified, 1 a problem (printed as `line N: ...`), 2 bad usage.",
    )
    parser.add_argument("export", help="the export, e.g. signoff-ledger-2026-12-06.jsonl")
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="KEY.pem",
        help="PEM file of the ledger's public keys (repeatable; every key in it is accepted)",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="a checkpoint file or a folder of them (repeatable)",
    )
    args = parser.parse_args(argv)
    if not args.public_key:
        print(HEADER_WARNING, file=sys.stderr)
    try:
        print(verify(args.export, args.public_key, args.checkpoint))
    except Failure as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
