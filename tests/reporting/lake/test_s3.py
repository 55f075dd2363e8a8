"""An S3-compatible bucket as the destination, through django-storages: moto's S3 server on
127.0.0.1, read back with boto3 as a lake consumer would."""

from __future__ import annotations

import gzip
import io
import json

import boto3
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from moto.server import ThreadedMotoServer

from approvals import services
from governance.models import LedgerEntry
from reporting.lake.models import LakeExport, LakeWatermark
from tests import factories

pytestmark = pytest.mark.django_db

BUCKET, PREFIX = "signoff-lake", "exports/signoff"
CREDENTIALS = {"aws_access_key_id": "lake-test", "aws_secret_access_key": "lake-test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    """The "archive" destination: a fresh bucket on the local S3 server; yields its client."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1", **CREDENTIALS)
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    settings.STORAGES = {**settings.STORAGES, "archive": s3_storage(s3_endpoint, BUCKET)}
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def s3_storage(endpoint: str, bucket: str) -> dict:
    """STORAGES entry as docs/lake.md gives it for an S3-compatible bucket."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": PREFIX,
            "endpoint_url": endpoint,
            "region_name": "eu-west-1",
            "access_key": CREDENTIALS["aws_access_key_id"],
            "secret_key": CREDENTIALS["aws_secret_access_key"],
        },
    }


@pytest.fixture
def history(org, low_tier_service, staging, pipeline_bot, approver):
    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, staging, triggered_by="dave"),
        actor=pipeline_bot,
    )
    factories.decide(release, approver)
    return release


def objects(client) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listing
    }


def test_events_land_in_the_bucket_as_gzip_json_lines_and_parquet(bucket, history):
    call_command("export_lake", "--destination", "archive", stdout=io.StringIO())
    stored = objects(bucket)
    run = LakeExport.objects.get(destination="archive")
    assert sorted(stored) == sorted(f"{PREFIX}/{name}" for name in run.files)
    [lines_key] = [k for k in stored if k.endswith(".jsonl.gz")]
    [parquet_key] = [k for k in stored if k.endswith(".parquet")]
    assert lines_key.startswith(f"{PREFIX}/events/date=")
    events = [json.loads(line) for line in gzip.decompress(stored[lines_key]).splitlines()]
    exported = LedgerEntry.objects.exclude(kind__in=["role.granted", "policy.published"])
    assert [e["signoffseq"] for e in events] == list(exported.values_list("seq", flat=True))
    decided = next(e for e in events if e["type"] == "com.signoff.release.decided")
    assert (decided["data"]["release_id"], decided["data"]["outcome"]) == (history.pk, "approved")
    table = pq.read_table(io.BytesIO(stored[parquet_key]))
    assert table.column("id").to_pylist() == [e["id"] for e in events]
    assert table.column("type").to_pylist() == [e["type"] for e in events]


def test_a_rerun_leaves_the_bucket_as_it_was(bucket, history):
    call_command("export_lake", "--destination", "archive", stdout=io.StringIO())
    before = objects(bucket)
    call_command("export_lake", "--destination", "archive", stdout=io.StringIO())
    assert objects(bucket) == before


def test_a_missing_bucket_is_a_clear_error_and_moves_nothing(
    s3_endpoint, settings, history, bucket
):
    settings.STORAGES = {**settings.STORAGES, "archive": s3_storage(s3_endpoint, "no-such")}
    with pytest.raises(CommandError, match=r"Export to 'archive' failed: .*NoSuchBucket"):
        call_command("export_lake", "--destination", "archive", stdout=io.StringIO())
    assert LakeWatermark.objects.get(destination="archive").last_seq == 0
    run = LakeExport.objects.get(destination="archive")
    assert (run.status, run.events, run.files) == ("failed", 0, [])
    assert "NoSuchBucket" in run.error
    assert objects(bucket) == {}


def test_a_backfill_into_a_missing_bucket_is_a_clear_error_and_moves_nothing(
    s3_endpoint, settings, history
):
    settings.STORAGES = {**settings.STORAGES, "archive": s3_storage(s3_endpoint, "no-such")}
    LakeWatermark.objects.create(destination="archive", last_seq=5)
    with pytest.raises(CommandError, match="Could not remove the partitions of 'archive': "):
        call_command(
            "export_lake",
            "--destination",
            "archive",
            "--since-date",
            "2026-01-01",
            stdout=io.StringIO(),
        )
    assert not LakeExport.objects.exists()
    assert LakeWatermark.objects.get(destination="archive").last_seq == 5
