"""The data-lake export of the whole bench ledger: speed, files and memory, then a rerun.

The export runs in a fresh Python process (`python -m benchmarks.lake`), as the streamed exports
do (benchmarks/exports.py), so its peak resident memory says what exporting costs, not what
seeding left behind. The child first exports one batch to a scratch folder (the warm-up), then
the whole ledger to a temporary folder through a storage of its own (`bench_lake`), from an
empty watermark, then runs again to time a rerun with nothing new. Its watermark and run rows
are removed at the end, and the folders with them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.exports import _peak_mib, _setup

DESTINATION, WARM_UP = "bench_lake", "bench_lake_warm_up"
MEMORY_BUDGET_MIB = 50  # the streamed exports' budget: memory flat whatever the ledger's size


@dataclass
class LakeResult:
    entries: int
    events: int
    files: int
    jsonl_bytes: int
    parquet_bytes: int
    seconds: float
    rerun_seconds: float
    rss_before_mib: float
    rss_peak_mib: float
    error: str | None = None

    @property
    def rate(self) -> float:
        """Ledger entries exported per second."""
        return self.entries / self.seconds if self.seconds else 0.0

    @property
    def rss_growth_mib(self) -> float:
        return max(0.0, self.rss_peak_mib - self.rss_before_mib)

    def figures(self) -> list[tuple[str, str, str]]:
        """(name, value, note) rows, as benchmarks/report.py lays them out."""
        name = "Data-lake export `manage.py export_lake`"
        if self.error:
            return [(name, "n/a", self.error)]
        mib = 1024 * 1024
        flat = self.rss_growth_mib < MEMORY_BUDGET_MIB
        return [
            (
                f"{name}, {self.entries:,} ledger entries",
                f"{self.rate:,.0f} entries/s",
                f"{self.events:,} events in {self.files:,} files in {self.seconds:.1f} s; "
                f"gzip JSON Lines {self.jsonl_bytes / mib:,.1f} MiB, "
                f"Parquet {self.parquet_bytes / mib:,.1f} MiB",
            ),
            (
                "... peak memory growth while exporting",
                f"{self.rss_growth_mib:,.1f} MiB",
                f"< {MEMORY_BUDGET_MIB} MiB: {'met' if flat else '**not met**'}",
            ),
            ("... a rerun with nothing new", f"{self.rerun_seconds * 1000:,.0f} ms", "no file"),
        ]


def measure_lake_export() -> LakeResult:
    """The export of the bench ledger, in its own process with the benchmark's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.lake"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return LakeResult(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, error=tail[0])
    return LakeResult(**json.loads(done.stdout.strip().splitlines()[-1]))


# --- In the child process ------------------------------------------------------------------------


def _warm_up(folder: Path) -> None:
    """Export one batch to a scratch destination first, as the streamed exports drain a few
    hundred lines before their baseline: imports, pyarrow's writer, query compilation and the
    allocator's first arenas are paid once per process, not per entry."""
    from reporting.lake.exporter import export_lake
    from reporting.lake.models import LakeExport, LakeWatermark

    export_lake(WARM_UP, max_batches=1)
    LakeWatermark.objects.filter(destination=WARM_UP).delete()
    LakeExport.objects.filter(destination=WARM_UP).delete()
    shutil.rmtree(folder, ignore_errors=True)


def _sizes(folder: Path) -> tuple[int, int]:
    lines = sum(p.stat().st_size for p in folder.rglob("*.jsonl.gz"))
    parquet = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    return lines, parquet


def _folder_storage(folder: Path) -> dict:
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(folder)},
    }


def _export(folder: Path) -> LakeResult:
    from django.test.utils import override_settings

    from reporting.lake.exporter import export_lake

    scratch = folder.with_name(folder.name + "-warm-up")
    override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            DESTINATION: _folder_storage(folder),
            WARM_UP: _folder_storage(scratch),
        }
    ).enable()
    _warm_up(scratch)
    before = _peak_mib()
    started = time.perf_counter()
    run = export_lake(DESTINATION)
    seconds = time.perf_counter() - started
    peak = _peak_mib()
    started = time.perf_counter()
    rerun = export_lake(DESTINATION)
    rerun_seconds = time.perf_counter() - started
    if rerun.files:
        raise RuntimeError(f"a rerun wrote {len(rerun.files)} files")
    lines, parquet = _sizes(folder)
    return LakeResult(
        run.entries,
        run.events,
        len(run.files),
        lines,
        parquet,
        seconds,
        rerun_seconds,
        before,
        peak,
    )


def main() -> int:
    _setup()
    from reporting.lake.models import LakeExport, LakeWatermark

    folder = Path(tempfile.mkdtemp(prefix="signoff-bench-lake-"))
    ours = [DESTINATION, WARM_UP]
    LakeWatermark.objects.filter(destination__in=ours).delete()  # always from the start
    try:
        result = _export(folder)
    finally:
        LakeWatermark.objects.filter(destination__in=ours).delete()
        LakeExport.objects.filter(destination__in=ours).delete()
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
