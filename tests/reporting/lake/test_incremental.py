"""Exporting again: nothing new writes nothing, new entries give a new file only, an interrupted
batch is written again under the same names, and --since-date writes a period anew."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from approvals import services
from governance.models import LedgerEntry
from reporting.lake import exporter
from reporting.lake.destinations import LakeError, lake_storage
from reporting.lake.exporter import export_lake
from reporting.lake.models import LakeExport, LakeWatermark
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def released(org, low_tier_service, staging, pipeline_bot):
    """`released()` requests one more release of web-frontend to staging."""

    def make():
        release, _ = services.request_approval(
            data=factories.release_input(low_tier_service, staging, triggered_by="dave"),
            actor=pipeline_bot,
        )
        return release

    return make


def seqs(lake) -> list[int]:
    return [event["signoffseq"] for event in lake.events()]


def last_seq() -> int:
    return LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True)[0]


def test_a_rerun_with_nothing_new_writes_nothing(lake, released):
    released()
    first = export_lake()
    files = lake.files()
    again = export_lake()
    assert lake.files() == files  # same names, same bytes
    assert (again.status, again.files, again.events) == ("done", [], 0)
    assert (again.from_seq, again.through_seq) == (first.through_seq, first.through_seq)


def test_new_entries_give_only_a_new_file(lake, released):
    released()
    export_lake()
    before = lake.files()
    release = released()
    run = export_lake()
    after = lake.files()
    assert {name: after[name] for name in before} == before
    added = sorted(set(after) - set(before))
    first_new = LedgerEntry.objects.get(seq=run.from_seq + 1)
    assert (first_new.kind, first_new.payload["ref"]) == ("change.opened", release.change.ref)
    day = first_new.recorded_at.astimezone(UTC).date().isoformat()
    stem = f"events/date={day}/events-{run.from_seq + 1:012d}-{last_seq():012d}"
    assert added == run.files == [f"{stem}.jsonl.gz", f"{stem}.parquet"]
    assert len(seqs(lake)) == len(set(seqs(lake)))  # no event twice


def test_an_interrupted_batch_is_written_again_under_the_same_names(lake, released, monkeypatch):
    released()
    real_advance = exporter.advance

    def crash(*args, **kwargs):
        raise OSError("worker lost")

    monkeypatch.setattr(exporter, "advance", crash)
    with pytest.raises(LakeError, match="worker lost"):
        export_lake()
    written = lake.files()
    watermark = LakeWatermark.objects.get(destination="lake")
    assert (watermark.last_seq, watermark.pending_through) == (0, last_seq())
    assert LakeExport.objects.get().status == "failed"
    claimed = watermark.pending_through

    released()  # the ledger moves on meanwhile
    monkeypatch.setattr(exporter, "advance", real_advance)
    run = export_lake()

    after = lake.files()
    assert {name: after[name] for name in written} == written  # rewritten identically
    assert run.files[:2] == list(written)
    assert len(run.files) == 4  # then the new entries, in a file of their own
    assert seqs(lake) == sorted(set(seqs(lake)))  # each event once
    assert LakeWatermark.objects.get(destination="lake").last_seq == last_seq() > claimed


def test_batches_move_the_watermark_one_at_a_time(lake, released, monkeypatch):
    monkeypatch.setattr(exporter, "BATCH", 5)
    released()
    released()
    run = export_lake(max_batches=2)
    assert (run.from_seq, run.through_seq, run.entries) == (0, 10, 10)
    assert not exporter.caught_up("lake")
    rest = export_lake()
    assert rest.through_seq == last_seq()
    assert exporter.caught_up("lake")
    exported = LedgerEntry.objects.filter(exporter.exported_kinds()).values_list("seq", flat=True)
    assert seqs(lake) == list(exported)


def test_since_date_writes_that_date_and_later_anew(lake, released):
    released()
    export_lake()
    before = lake.files()
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    # Files an earlier export left with other batch bounds: today's go, yesterday's stay.
    stale = lake.folder / f"events/date={today}/events-000000000001-000000000003.jsonl.gz"
    kept = lake.folder / f"events/date={yesterday}/events-000000000001-000000000003.jsonl.gz"
    for path in (stale, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"older export")

    tomorrow = (today + timedelta(days=1)).isoformat()
    call_command("export_lake", "--since-date", tomorrow, stdout=io.StringIO())
    assert stale.exists()  # nothing is dated that late: nothing removed, nothing new
    assert LakeWatermark.objects.get(destination="lake").last_seq == last_seq()

    call_command("export_lake", "--since-date", today.isoformat(), stdout=io.StringIO())
    assert not stale.exists()
    assert kept.read_bytes() == b"older export"
    assert {k: v for k, v in lake.files().items() if "date=" + str(today) in k} == before
    assert LakeWatermark.objects.get(destination="lake").last_seq == last_seq()


def test_since_date_on_a_new_destination_leaves_older_entries_out(lake, released):
    released()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    exporter.rewind("lake", lake_storage("lake"), tomorrow)
    assert export_lake().files == []
    assert lake.files() == {}


def test_the_command_says_what_it_wrote(lake, released):
    released()
    out = io.StringIO()
    call_command("export_lake", stdout=out)
    run = LakeExport.objects.get()
    assert out.getvalue() == (
        f"lake: entries #1 to #{last_seq()}, {run.events} events in 2 files.\n"
    )
    out = io.StringIO()
    call_command("export_lake", stdout=out)
    assert out.getvalue() == f"lake: nothing new after #{last_seq()}.\n"


def test_an_unknown_destination_is_a_clear_error_and_writes_nothing(lake, released):
    released()
    with pytest.raises(CommandError, match="No storage named 'archive' in STORAGES"):
        call_command("export_lake", "--destination", "archive", stdout=io.StringIO())
    assert not LakeWatermark.objects.exists()
    assert not LakeExport.objects.exists()


def test_a_bad_since_date_is_a_clear_error_and_writes_nothing(lake, released):
    released()
    with pytest.raises(CommandError, match="--since-date must be a date as YYYY-MM-DD"):
        call_command("export_lake", "--since-date", "01/02/2026", stdout=io.StringIO())
    assert not LakeWatermark.objects.exists()
    assert lake.files() == {}


def test_without_settings_the_default_destination_is_a_folder_under_the_var_dir(
    settings, tmp_path, released
):
    settings.VAR_DIR = tmp_path / "var"
    settings.STORAGES = {k: v for k, v in settings.STORAGES.items() if k != "lake"}
    released()
    run = export_lake()
    assert sorted(
        str(p.relative_to(tmp_path / "var" / "lake"))
        for p in (tmp_path / "var" / "lake").rglob("*.*")
    ) == sorted(run.files)
