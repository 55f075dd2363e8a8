"""The Parquet files: the documented, fixed schema, and the same rows as the JSON Lines."""

from __future__ import annotations

import json
from datetime import date, datetime

import pyarrow.parquet as pq
import pytest

from approvals import services
from reporting.lake.destinations import lake_storage
from reporting.lake.exporter import export_lake
from tests import factories

pytestmark = pytest.mark.django_db

# docs/lake.md, "Parquet columns": name, type, whether it may be null.
DOCUMENTED = [
    ("specversion", "string", False),
    ("id", "string", False),
    ("source", "string", False),
    ("type", "string", False),
    ("subject", "string", False),
    ("time", "timestamp[us, tz=UTC]", False),
    ("datacontenttype", "string", False),
    ("signoffseq", "int64", False),
    ("signoffhash", "string", False),
    ("signoffprevhash", "string", False),
    ("signoffkeyid", "string", False),
    ("signoffsignature", "string", False),
    ("kind", "string", False),
    ("release_id", "int64", True),
    ("change", "string", True),
    ("service", "string", True),
    ("team", "string", True),
    ("environment", "string", True),
    ("platform", "string", True),
    ("platform_kind", "string", True),
    ("cluster", "string", True),
    ("version", "string", True),
    ("digest", "string", True),
    ("actor", "string", False),
    ("outcome", "string", True),
    ("reason", "string", True),
    ("data", "string", False),
]


@pytest.fixture
def exported(lake, org, low_tier_service, staging, pipeline_bot, approver):
    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, staging, triggered_by="dave"),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)
    return export_lake()


def test_each_parquet_file_has_the_documented_schema(lake, exported):
    [name] = [n for n in exported.files if n.endswith(".parquet")]
    schema = pq.read_schema(lake.folder / name)
    assert [(f.name, str(f.type), f.nullable) for f in schema] == DOCUMENTED


def test_parquet_rows_are_the_json_lines_flattened(lake, exported):
    events, rows = lake.events(), lake.rows()
    assert len(rows) == len(events) > 0
    for event, row in zip(events, rows, strict=True):
        envelope = {k: v for k, v in event.items() if k != "data"}
        assert {k: row[k] for k in envelope if k != "time"} == {
            k: v for k, v in envelope.items() if k != "time"
        }
        assert row["time"] == datetime.fromisoformat(event["time"])
        assert json.loads(row["data"]) == event["data"]
        flattened = {k: v for k, v in event["data"].items() if k != "payload"}
        assert {k: row[k] for k in flattened} == flattened


def test_events_held_back_in_small_groups_give_the_same_files(lake, exported, monkeypatch):
    """Files are written FLUSH_ROWS events at a time (bounded memory); the grouping changes
    neither the lines nor the rows."""
    from reporting.lake import exporter

    events, rows = lake.events(), lake.rows()
    monkeypatch.setattr(exporter, "FLUSH_ROWS", 3)
    exporter.rewind("lake", lake_storage("lake"), date(2000, 1, 1))
    export_lake()
    [name] = [n for n in lake.names() if n.endswith(".parquet")]
    assert pq.ParquetFile(lake.folder / name).num_row_groups == -(-len(rows) // 3)
    assert (lake.events(), lake.rows()) == (events, rows)
