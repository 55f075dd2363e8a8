"""The periodic export: every configured destination, in bounded steps, one failure apart."""

from __future__ import annotations

import pytest

from approvals import services
from governance.models import LedgerEntry
from reporting.lake import exporter, tasks
from reporting.lake.models import LakeExport, LakeWatermark
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(org, low_tier_service, staging, pipeline_bot, approver):
    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, staging, triggered_by="dave"),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)


def test_the_task_catches_up_in_bounded_steps_and_a_broken_destination_waits_apart(
    lake, history, settings, monkeypatch, eager
):
    settings.LAKE_DESTINATIONS = ["missing", "lake"]
    monkeypatch.setattr(exporter, "BATCH", 4)
    monkeypatch.setattr(tasks, "BATCHES_PER_TASK", 2)
    head = LedgerEntry.objects.count()

    summary = tasks.export_lake_task.delay().get()

    # Each task exported two batches of four entries, then handed over to a fresh one.
    runs = LakeExport.objects.filter(destination="lake").order_by("pk")
    assert [run.entries for run in runs] == [8] * (head // 8) + ([head % 8] if head % 8 else [])
    assert LakeWatermark.objects.get(destination="lake").last_seq == head
    assert not LakeWatermark.objects.filter(destination="missing").exists()
    assert summary.startswith("missing: failed; lake: ")
    exported = LedgerEntry.objects.filter(exporter.exported_kinds()).values_list("seq", flat=True)
    assert [event["signoffseq"] for event in lake.events()] == list(exported)
