"""The same ServiceNow record delivered twice at once (a push racing a pull): one row, one
ledger entry; two versions at once: the newer one wins whichever lands first."""

from __future__ import annotations

import pytest

from changes.incidents.services import map_external_service
from changes.records.models import ChangeRecord
from changes.servicenow.services import apply_record
from governance.ledger.models import LedgerEntry
from tests.approvals.test_concurrency import run_together
from tests.changes.servicenow.conftest import CI, change_request, display_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def mapped(service):
    map_external_service(source="servicenow", external_id=CI, service=service, actor="test")


def apply(record: dict):
    return lambda: apply_record("change_request", record).outcome


def test_one_new_record_delivered_twice_at_once_is_created_once(mapped):
    results = run_together(apply(change_request()), apply(display_all(change_request())))

    assert sorted(results) == ["created", "unchanged"], results
    assert ChangeRecord.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="change.synced").count() == 1


def test_two_versions_at_once_end_with_the_newer_one(mapped):
    older = change_request(sys_updated_on="2026-12-01 09:00:00", state="-3")
    newer = change_request(sys_updated_on="2026-12-01 09:05:00", state="-2")

    results = run_together(apply(older), apply(newer))

    assert sorted(results) in (["created", "stale"], ["created", "updated"]), results
    change = ChangeRecord.objects.get()
    assert change.state == "scheduled"
    assert change.external_updated_at.isoformat() == "2026-12-01T09:05:00+00:00"
