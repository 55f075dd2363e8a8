"""Export the ledger's approval events to a data-lake destination, incrementally and idempotently.

Each step claims the next batch of ledger entries for the destination, writes its files, then
moves the watermark past it:

1. claim: under the watermark's row lock, note the batch's end (`pending_through`) and commit;
2. write: one gzip JSON Lines file and one Parquet file per UTC date in the batch, named from
   the first and last seq they hold, so the same range always gives the same names and bytes;
3. advance: move the watermark to the batch's end, only if it still stands where it was.

A crash between 2 and 3 leaves the claim in place: the next run writes that very range again
(overwriting identical files, never adding duplicates) before going on. Two runs at once write the
same files for the same claim, and only one of them moves the watermark. Entries are read in
chunks, a batch at a time: memory is bounded whatever the ledger's size.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from governance.ledger.format import ENTRY_FIELDS
from governance.models import LedgerEntry
from reporting.lake.destinations import DEFAULT_DESTINATION, LakeError, head_seq, lake_storage
from reporting.lake.models import LakeExport, LakeWatermark
from reporting.lake.schema import EXPORTED_FAMILIES, PARQUET_SCHEMA, Catalogue, Event, to_event

BATCH = 10_000  # ledger entries a claim covers: one watermark step
READ_CHUNK = 500  # entries a query reads within a batch
EVENTS_FOLDER = "events"
GZIP_LEVEL = 6  # level 9 costs twice the time for ~3% smaller files
FLUSH_ROWS = 500  # events held in memory per file before they are compressed and written
PARQUET_COMPRESSION = "zstd"


def ledger_source() -> str:
    """The CloudEvents `source` of every event: the ledger's page on this site."""
    return settings.SITE_URL + reverse("reporting:ledger")


def exported_kinds() -> Q:
    query = Q()
    for family in EXPORTED_FAMILIES:
        query |= Q(kind__startswith=f"{family}.")
    return query


# --- A run --------------------------------------------------------------------------------------


def export_lake(
    destination: str = DEFAULT_DESTINATION,
    *,
    since: date | None = None,
    max_batches: int | None = None,
) -> LakeExport:
    """Export what the ledger holds beyond `destination`'s watermark (or, with `since`, again
    from that UTC date on), at most `max_batches` batches. Returns the run's record; raises
    LakeError, with the run recorded as failed, when the destination refuses a file."""
    storage = lake_storage(destination)
    if since is not None:
        try:
            rewind(destination, storage, since)
        except Exception as exc:  # the store's own error (boto3's are not OSErrors), as a message
            raise LakeError(f"Could not remove the partitions of '{destination}': {exc}") from exc
    watermark, _ = LakeWatermark.objects.get_or_create(destination=destination)
    run = LakeExport.objects.create(
        destination=destination, from_seq=watermark.last_seq, through_seq=watermark.last_seq
    )
    try:
        _run_batches(run, storage, max_batches)
    except Exception as exc:
        _finish(run, LakeExport.Status.FAILED, f"{type(exc).__name__}: {exc}")
        raise LakeError(f"Export to '{destination}' failed: {exc}") from exc
    _finish(run, LakeExport.Status.DONE)
    return run


def _run_batches(run: LakeExport, storage: Storage, max_batches: int | None) -> None:
    source, catalogue = ledger_source(), Catalogue.load()
    done = 0
    while max_batches is None or done < max_batches:
        claim = claim_batch(run.destination)
        if claim is None:
            return
        after, through = claim
        written = write_batch(storage, after, through, catalogue, source)
        advance(run.destination, after, through)
        run.through_seq, run.entries = through, run.entries + (through - after)
        run.events += written.events
        run.files += written.files
        # Progress is kept per batch, so the status page shows a long backfill moving.
        run.save(update_fields=["through_seq", "entries", "events", "files"])
        done += 1


def _finish(run: LakeExport, status: str, error: str = "") -> None:
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])


def caught_up(destination: str) -> bool:
    """Whether `destination` holds everything the ledger holds now."""
    watermark = LakeWatermark.objects.filter(destination=destination).first()
    return (
        watermark is not None
        and watermark.pending_through is None
        and (watermark.last_seq >= head_seq())
    )


# --- Claim, advance, rewind ---------------------------------------------------------------------


def claim_batch(destination: str) -> tuple[int, int] | None:
    """(after, through) of the batch to write next, committed as pending; None when caught up.

    A pending claim left by an interrupted run is returned as it was: its files must come out
    the same."""
    with transaction.atomic():
        watermark = LakeWatermark.objects.select_for_update().get(destination=destination)
        if watermark.pending_through is not None:
            return watermark.last_seq, watermark.pending_through
        head = head_seq()
        if head <= watermark.last_seq:
            return None
        # Seqs are contiguous: the head is the last one, and every one before it is committed.
        watermark.pending_through = min(watermark.last_seq + BATCH, head)
        watermark.updated_at = timezone.now()
        watermark.save(update_fields=["pending_through", "updated_at"])
        return watermark.last_seq, watermark.pending_through


def advance(destination: str, after: int, through: int) -> bool:
    """Move the watermark from `after` to `through`, unless another run already moved it."""
    moved = LakeWatermark.objects.filter(destination=destination, last_seq=after).update(
        last_seq=through, pending_through=None, updated_at=timezone.now()
    )
    return moved == 1


def rewind(destination: str, storage: Storage, since: date) -> int:
    """Set the watermark to export again from the first entry recorded on `since` (UTC) and
    remove the partitions of that date and later, which the export writes anew. On a new
    destination this starts the export at `since`, leaving older entries out. Returns the new
    watermark."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    first = (
        LedgerEntry.objects.filter(recorded_at__gte=start)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    position = first - 1 if first is not None else head_seq()
    LakeWatermark.objects.get_or_create(destination=destination)
    # The watermark moves only once the partitions are gone, and no run claims a batch
    # meanwhile: a removal that fails half-way leaves the watermark where it was, and running
    # the same command again finishes the job.
    with transaction.atomic():
        LakeWatermark.objects.select_for_update().get(destination=destination)
        for partition in partitions(storage):
            if partition >= since:
                _remove_partition(storage, partition)
        LakeWatermark.objects.filter(destination=destination).update(
            last_seq=position, pending_through=None, updated_at=timezone.now()
        )
    return position


def partitions(storage: Storage) -> list[date]:
    """The dates that have a partition folder at `destination`."""
    try:
        folders, _ = storage.listdir(EVENTS_FOLDER)
    except FileNotFoundError:
        return []
    found = []
    for folder in folders:
        name, _, value = folder.partition("=")
        if name == "date":
            try:
                found.append(date.fromisoformat(value))
            except ValueError:
                continue  # not one of ours
    return sorted(found)


def _remove_partition(storage: Storage, day: date) -> None:
    folder = partition_folder(day)
    _, files = storage.listdir(folder)
    for name in files:
        if name.startswith("events-"):
            storage.delete(f"{folder}/{name}")


def partition_folder(day: date) -> str:
    return f"{EVENTS_FOLDER}/date={day.isoformat()}"


# --- Writing a batch ----------------------------------------------------------------------------


@dataclass
class Written:
    """What a batch wrote: events and the names of the files, in order."""

    events: int = 0
    files: list[str] = field(default_factory=list)


def write_batch(
    storage: Storage, after: int, through: int, catalogue: Catalogue, source: str
) -> Written:
    """Write the events of entries (after, through] to `storage`, one pair of files per run of
    consecutive entries on the same UTC date."""
    written = Written()
    current: PartitionFile | None = None
    for chunk in entry_chunks(after, through):
        catalogue.prepare(chunk)
        for entry in chunk:
            event = to_event(entry, catalogue, source)
            day = event.time.astimezone(UTC).date()
            if current is None or current.day != day:
                if current is not None:
                    written.files += current.store(storage)
                current = PartitionFile(day)
            current.add(event)
            written.events += 1
    if current is not None:
        written.files += current.store(storage)
    return written


def entry_chunks(after: int, through: int) -> Iterator[list[dict]]:
    """The exported entries in (after, through], oldest first, READ_CHUNK at a time."""
    entries = LedgerEntry.objects.filter(exported_kinds(), seq__lte=through).order_by("seq")
    last = after
    while True:
        chunk = list(entries.filter(seq__gt=last).values(*ENTRY_FIELDS)[:READ_CHUNK])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]["seq"]


class PartitionFile:
    """The events of one date within a batch, written as they come to two temporary files: gzip
    JSON Lines, and Parquet in row groups of FLUSH_ROWS. Memory holds one row group at most."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.first = self.last = 0
        self.lines_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by store())
        self.parquet_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by store())
        # mtime 0 and no file name in the header: the same events give the same bytes.
        self.gzip = gzip.GzipFile(
            filename="", fileobj=self.lines_file, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        )
        self.parquet = pq.ParquetWriter(
            self.parquet_file, PARQUET_SCHEMA, compression=PARQUET_COMPRESSION
        )
        self.lines: list[str] = []
        self.columns: dict[str, list] = {name: [] for name in PARQUET_SCHEMA.names}

    def add(self, event: Event) -> None:
        self.first = self.first or event.seq
        self.last = event.seq
        self.lines.append(event.line)
        for name, values in self.columns.items():
            values.append(event.row[name])
        if len(self.lines) == FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the events held so far: one compression call and one row group for them all."""
        if not self.lines:
            return
        self.gzip.write("".join(self.lines).encode())
        self.parquet.write_table(pa.table(self.columns, schema=PARQUET_SCHEMA))
        self.lines = []
        self.columns = {name: [] for name in PARQUET_SCHEMA.names}

    def store(self, storage: Storage) -> list[str]:
        """Write both files to `storage`, replacing any earlier copy; their names."""
        self.flush()
        self.gzip.close()
        self.parquet.close()
        stem = f"{partition_folder(self.day)}/events-{self.first:012d}-{self.last:012d}"
        names = []
        for content, suffix in ((self.lines_file, "jsonl.gz"), (self.parquet_file, "parquet")):
            content.seek(0)
            names.append(_replace(storage, f"{stem}.{suffix}", content))
            content.close()
        return names


def _replace(storage: Storage, name: str, content) -> str:
    """Save `content` as exactly `name`: storages give a clashing file another name instead of
    overwriting it, so an earlier copy (an interrupted run's) is deleted first."""
    if storage.exists(name):
        storage.delete(name)
    saved = storage.save(name, File(content, name=name))
    if saved != name:
        raise LakeError(f"the destination stored {name} as {saved}; it must keep names as given")
    return name
