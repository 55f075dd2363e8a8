"""What the status page shows of each data-lake destination: where it is, how far the export has
got, and how its runs went. Reads only; a handful of queries whatever the number of runs."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.storage import FileSystemStorage, Storage

from reporting.lake.destinations import LakeError, destinations, head_seq, lake_storage
from reporting.lake.models import LakeExport, LakeWatermark

RECENT_RUNS = 20
FILES_SHOWN = 20


@dataclass(frozen=True)
class DestinationStatus:
    """One destination as the page shows it."""

    name: str
    where: str
    problem: str
    exported_through: int
    behind: int
    pending_through: int | None
    last_run: LakeExport | None

    @property
    def files_shown(self) -> list[str]:
        return self.last_run.files[-FILES_SHOWN:] if self.last_run else []

    @property
    def files_hidden(self) -> int:
        return max(0, len(self.last_run.files) - FILES_SHOWN) if self.last_run else 0


def describe(storage: Storage) -> str:
    """A folder's path or a bucket's URL, for people (never its keys)."""
    if isinstance(storage, FileSystemStorage):
        return f"Folder {storage.location}"
    bucket = getattr(storage, "bucket_name", None)
    if bucket:
        return f"s3://{bucket}/{getattr(storage, 'location', '')}".rstrip("/")
    return type(storage).__name__


def destination_status(name: str, head: int, watermark: LakeWatermark | None) -> DestinationStatus:
    try:
        where, problem = describe(lake_storage(name)), ""
    except LakeError as exc:
        where, problem = "Not configured", str(exc)
    through = watermark.last_seq if watermark else 0
    return DestinationStatus(
        name=name,
        where=where,
        problem=problem,
        exported_through=through,
        behind=max(0, head - through),
        pending_through=watermark.pending_through if watermark else None,
        last_run=LakeExport.objects.filter(destination=name).first(),
    )


def lake_status() -> dict:
    """The page's context: each configured destination, then the most recent runs of any."""
    names = destinations()
    head = head_seq()
    watermarks = {w.destination: w for w in LakeWatermark.objects.filter(destination__in=names)}
    return {
        "head": head,
        "destinations": [destination_status(n, head, watermarks.get(n)) for n in names],
        "runs": list(LakeExport.objects.all()[:RECENT_RUNS]),
    }
