#!/usr/bin/env python3
"""Verify a Signoff ledger export offline: needs only Python and the `cryptography` package.

    python tools/verify_ledger_export.py ledger.jsonl [--public-key BASE64] [--checkpoint PATH]

Pass --public-key (repeatable) with keys obtained independently of the export for a check that
does not trust the keys embedded in the file. Pass --checkpoint (repeatable: a checkpoint file or
a folder of them, taken from the checkpoint store rather than from Signoff) to also prove that the
export was not cut short or rewritten since those checkpoints were signed.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Django-free on purpose: the format and the cryptography only, importable without settings.
from governance.ledger import format as ledger_format


class Failure(Exception):
    """Verification failed; the message is the line to print."""


def load_checkpoints(paths: list[str]) -> list[tuple[str, ledger_format.Checkpoint]]:
    """Every checkpoint named by files and folders, ordered by seq and time (latest last)."""
    files: list[Path] = []
    for given in map(Path, paths):
        found = sorted(given.glob("checkpoint-*.json")) if given.is_dir() else [given]
        if not found:
            raise Failure(f"FAILED: no checkpoint files in {given}")
        files += found
    loaded = []
    for path in files:
        try:
            loaded.append((str(path), ledger_format.Checkpoint.from_json(path.read_text())))
        except (OSError, ValueError) as exc:
            raise Failure(f"FAILED against checkpoint {path}: not a checkpoint ({exc})") from exc
    return sorted(loaded, key=lambda item: (item[1].seq, item[1].recorded_at))


def verify_export(export: str, public_keys: list[str], wanted: set[int]) -> tuple[int, dict, dict]:
    """Walk the export: (entries verified, keys used, hashes of the entries at `wanted` seqs)."""
    seen: dict[int, str] = {}
    with open(export) as handle:
        header = json.loads(handle.readline())
        encoded = public_keys or list(header["public_keys"].values())
        keys = {ledger_format.key_id(k): k for k in map(ledger_format.load_public_key, encoded)}
        entries = ledger_format.noting_hashes(map(json.loads, handle), wanted, seen)
        count = 0
        for result in ledger_format.verify_entries(entries, keys):
            if isinstance(result, ledger_format.Problem):
                raise Failure(f"FAILED at {result} ({count} entries verified before it)")
            count += 1
    return count, keys, seen


def check_checkpoints(checkpoints: list, keys: dict, count: int, seen: dict[int, str]) -> None:
    """Every checkpoint must be validly signed and the export must reach it unchanged."""
    for path, checkpoint in checkpoints:
        problem = ledger_format.checkpoint_problem(
            checkpoint, keys, verified=count, hash_at_seq=seen.get(checkpoint.seq)
        )
        if problem:
            raise Failure(f"FAILED against checkpoint {path}: {problem}")


def summary(count: int, checkpoints: list) -> str:
    if not checkpoints:
        return f"OK: {count} entries verified"
    path, latest = checkpoints[-1]
    matched = (
        "1 checkpoint matches" if len(checkpoints) == 1 else f"{len(checkpoints)} checkpoints match"
    )
    return f"OK: {count} entries verified; {matched}, the latest {path} at entry #{latest.seq}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--public-key", action="append", default=[])
    parser.add_argument("--checkpoint", action="append", default=[])
    args = parser.parse_args()
    try:
        checkpoints = load_checkpoints(args.checkpoint)
        wanted = {checkpoint.seq for _, checkpoint in checkpoints}
        count, keys, seen = verify_export(args.export, args.public_key, wanted)
        check_checkpoints(checkpoints, keys, count, seen)
    except Failure as exc:
        print(exc)
        return 1
    print(summary(count, checkpoints))
    return 0


if __name__ == "__main__":
    sys.exit(main())
