"""Whatever ServiceNow (or anyone holding its token) sends: a clear 4xx and nothing written, or
a success; never a 5xx. The documents are the Table API's records with hazards planted (NUL,
lone surrogates, deep nesting, huge strings, wrong types, keys dropped or added)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changes.incidents.models import Incident
from changes.records.models import ChangeRecord
from changes.servicenow.models import ServiceNowRecord
from governance.ledger.models import LedgerEntry
from tests.changes.servicenow.conftest import change_request, display_all, incident
from tests.test_bad_input import PROPERTY, assert_api_answer, hostile_body

pytestmark = pytest.mark.django_db
TEMPLATES = [
    {"table": "change_request", "record": change_request()},
    {"table": "change_request", "record": display_all(change_request())},
    {"result": [display_all(incident()), change_request()]},
    incident(),
]


def written() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (ChangeRecord, Incident, ServiceNowRecord, LedgerEntry)
    )


@PROPERTY
@given(data=st.data())
def test_hostile_records_never_fail_and_refusals_write_nothing(client, token, data):
    template = data.draw(st.sampled_from(TEMPLATES))
    before = written()

    response = client.post(
        "/integrations/servicenow/",
        hostile_body(data, template),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert_api_answer(response)
    if response.status_code >= 400:
        assert written() == before
