"""The periodic export to each configured data-lake destination."""

from __future__ import annotations

import logging

from celery import shared_task

from reporting.lake.destinations import LakeError, destinations

logger = logging.getLogger(__name__)

# Batches a task exports before handing over to a fresh one: a first export of a large ledger
# proceeds in bounded steps instead of holding one worker for its whole length.
BATCHES_PER_TASK = 50


@shared_task
def export_lake_task() -> str:
    """Export what is new to every destination; one that fails (recorded on its run, shown on
    the status page) does not hold the others back."""
    # The exporter loads pyarrow (~40 MiB): imported by the worker that runs this task, not by
    # every web process that imports reporting.tasks to queue a compliance report.
    from reporting.lake.exporter import caught_up, export_lake

    summaries, unfinished = [], False
    for destination in destinations():
        try:
            run = export_lake(destination, max_batches=BATCHES_PER_TASK)
        except LakeError as exc:
            logger.warning("%s", exc)
            summaries.append(f"{destination}: failed")
            continue
        summaries.append(f"{destination}: {run.events} events, {len(run.files)} files")
        unfinished = unfinished or not caught_up(destination)
    if unfinished:
        export_lake_task.delay()
    return "; ".join(summaries)
