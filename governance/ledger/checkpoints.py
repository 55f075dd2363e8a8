"""Signed checkpoints of the ledger's head, kept where the database cannot rewrite them.

The database refuses to shorten the ledger, but whoever can switch its triggers off (a superuser,
the table owner) can still cut the chain back and leave a shorter, perfectly valid one. A
checkpoint is a signed "the chain had N entries, the last with hash H, at time T", written as a
new file through a Django storage (a folder, or an S3-compatible bucket) and never overwritten.
The verifiers fail when the ledger is shorter than the latest checkpoint or differs at its seq.

A checkpoint is only written when the chain still extends the previous one, so each checkpoint
vouches for all the ones before it and checking the latest is enough; `every=True` checks them
all, for when the signing key itself may have been misused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone

from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.ledger.models import LedgerEntry, LedgerHead

NAME_PREFIX, NAME_SUFFIX = "checkpoint-", ".json"
CHECK_BATCH = 1000


class CheckpointRefused(Exception):
    """The ledger no longer extends the last checkpoint; anchoring it would bless the damage."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint and the name of the file it was read from or written to."""

    name: str
    checkpoint: ledger_format.Checkpoint


@dataclass(frozen=True)
class WriteOutcome:
    """The checkpoint now anchoring the head (None: empty ledger), and whether it is new."""

    stored: StoredCheckpoint | None
    written: bool


@dataclass(frozen=True)
class CheckpointVerdict:
    """How the ledger compares with its checkpoints: the latest one checked, or the failure."""

    latest: StoredCheckpoint | None
    checked: int
    failed: str | None = None
    problem: str | None = None


def checkpoint_storage() -> Storage:
    """The storage configured under STORAGES[settings.LEDGER_CHECKPOINT_STORAGE]."""
    return storages[settings.LEDGER_CHECKPOINT_STORAGE]


def checkpoint_names() -> list[str]:
    """Every checkpoint file name, oldest first: names sort by seq, then by time."""
    try:
        _, files = checkpoint_storage().listdir("")
    except FileNotFoundError:  # the folder only appears with the first checkpoint
        return []
    return sorted(f for f in files if f.startswith(NAME_PREFIX) and f.endswith(NAME_SUFFIX))


def load_checkpoint(name: str) -> StoredCheckpoint:
    """Read one checkpoint file; ValueError when it is not a checkpoint at all."""
    with checkpoint_storage().open(name, "rb") as handle:
        text = handle.read().decode()
    return StoredCheckpoint(name, ledger_format.Checkpoint.from_json(text))


def write_checkpoint() -> WriteOutcome:
    """Sign the ledger's head into a new checkpoint file, unless the last one anchors it already.

    Raises CheckpointRefused when the chain since the last checkpoint does not verify or no longer
    extends it (shortened, rewritten), so a damaged ledger is reported, never re-anchored.
    """
    head = LedgerHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.entry_hash) if head else (0, ledger_format.GENESIS_HASH)
    last = _last_trusted_checkpoint()
    if last and (last.checkpoint.seq, last.checkpoint.entry_hash) == (head_seq, head_hash):
        return WriteOutcome(stored=last, written=False)
    # An empty ledger is only fine while nothing was ever anchored; after a checkpoint it means
    # the ledger was emptied, which _check_extends reports.
    if last is None and head_seq == 0:
        return WriteOutcome(stored=None, written=False)
    _check_extends(last, head_seq, head_hash)
    checkpoint = ledger_format.sign_checkpoint(
        ledger.signing_key(),
        seq=head_seq,
        entry_hash=head_hash,
        recorded_at=timezone.now().isoformat(timespec="microseconds"),
    )
    # Storages never replace an existing file on save (a clash gets another name), so history
    # only grows; removing it takes access to the store, outside the database.
    name = checkpoint_storage().save(
        checkpoint.file_name(), ContentFile(checkpoint.to_json().encode())
    )
    return WriteOutcome(stored=StoredCheckpoint(name, checkpoint), written=True)


def verify_checkpoints(verified: int, *, every: bool = False) -> CheckpointVerdict:
    """Compare a chain already verified up to `verified` entries with the latest checkpoint, or
    with every one. Each must carry a valid signature, and the chain must reach its seq with the
    same hash there."""
    names = checkpoint_names()
    chosen = names if every else names[-1:]
    keys = ledger.public_keys()
    latest = None
    for batch in _batches(chosen):
        latest, failure = _check_batch(batch, keys, verified)
        if failure:
            name, problem = failure
            return CheckpointVerdict(latest=None, checked=0, failed=name, problem=problem)
    return CheckpointVerdict(latest=latest, checked=len(chosen))


def _last_trusted_checkpoint() -> StoredCheckpoint | None:
    """The latest checkpoint, which must be readable and carry a valid signature."""
    names = checkpoint_names()
    if not names:
        return None
    try:
        last = load_checkpoint(names[-1])
    except ValueError as exc:
        raise CheckpointRefused(
            f"the last checkpoint {names[-1]} is not a checkpoint ({exc})"
        ) from exc
    problem = ledger_format.checkpoint_signature_problem(last.checkpoint, ledger.public_keys())
    if problem:
        raise CheckpointRefused(f"the last checkpoint {last.name}: {problem}")
    return last


def _check_extends(last: StoredCheckpoint | None, head_seq: int, head_hash: str) -> None:
    """Verify the entries after the last checkpoint up to the head; the first checkpoint ever
    verifies the whole chain (once: later ones only walk what was appended since)."""
    after_seq, after_hash = (0, ledger_format.GENESIS_HASH)
    if last:
        after_seq, after_hash = last.checkpoint.seq, last.checkpoint.entry_hash
        _check_still_there(last, head_seq)
    seen: dict[int, str] = {}
    entries = ledger.stored_entries(after=after_seq, through=head_seq)
    walk = ledger_format.verify_entries(
        ledger_format.noting_hashes(entries, {head_seq}, seen),
        ledger.public_keys(),
        after_seq=after_seq,
        after_hash=after_hash,
    )
    for result in walk:
        if isinstance(result, ledger_format.Problem):
            raise CheckpointRefused(f"{result}. Run verify_ledger.")
    if seen.get(head_seq) != head_hash:
        raise CheckpointRefused(
            f"the ledger head (#{head_seq}) does not match its entries. Run verify_ledger."
        )


def _check_still_there(last: StoredCheckpoint, head_seq: int) -> None:
    """The entry the last checkpoint anchored must still be in the ledger, unchanged."""
    seq, name = last.checkpoint.seq, last.name
    if head_seq < seq:
        raise CheckpointRefused(
            f"the ledger ends at entry #{head_seq}, before entry #{seq} of the last checkpoint "
            f"{name}; entries were removed. Run verify_ledger."
        )
    stored = LedgerEntry.objects.filter(seq=seq).values_list("entry_hash", flat=True).first()
    if stored != last.checkpoint.entry_hash:
        raise CheckpointRefused(
            f"entry #{seq} no longer matches the last checkpoint {name}; the chain was "
            "rewritten. Run verify_ledger."
        )


def _batches(names: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(names), CHECK_BATCH):
        yield names[start : start + CHECK_BATCH]


def _check_batch(
    names: list[str], keys: dict, verified: int
) -> tuple[StoredCheckpoint | None, tuple[str, str] | None]:
    """(the last checkpoint of the batch, None) or (None, (failing name, problem))."""
    loaded = []
    for name in names:
        try:
            loaded.append(load_checkpoint(name))
        except ValueError as exc:
            return None, (name, f"not a checkpoint ({exc})")
    seqs = {stored.checkpoint.seq for stored in loaded}
    hashes = dict(LedgerEntry.objects.filter(seq__in=seqs).values_list("seq", "entry_hash"))
    for stored in loaded:
        problem = ledger_format.checkpoint_problem(
            stored.checkpoint,
            keys,
            verified=verified,
            hash_at_seq=hashes.get(stored.checkpoint.seq),
        )
        if problem:
            return None, (stored.name, problem)
    return loaded[-1], None
