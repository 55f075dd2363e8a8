"""ServiceNow's Table API records: `changes.servicenow.payloads` (the endpoint in front of it
is fuzzed by tests/changes/servicenow/test_hostile_input.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from changes.servicenow.exceptions import InvalidRecord
from changes.servicenow.payloads import (
    CHANGE_REQUEST,
    ChangeRequestRecord,
    IncidentRecord,
    read_change_request,
    read_incident,
    records_in,
)
from tests.changes.servicenow.conftest import change_request, display_all, incident
from tests.fuzz.helpers import PARSER, documents, timestamps

servicenow_times = timestamps | st.sampled_from(["2026-02-30 10:00:00", "10000-01-01 00:00:00"])
records = st.one_of(
    st.builds(change_request, start_date=servicenow_times, sys_updated_on=servicenow_times),
    st.builds(incident, opened_at=servicenow_times).map(display_all),
    st.builds(change_request).map(display_all),
)
pushes = st.one_of(
    records,
    st.builds(lambda record: {"table": "change_request", "record": record}, records),
    st.builds(lambda *items: {"result": list(items)}, records, records),
)


@PARSER
@given(body=documents(pushes))
def test_a_push_is_read_record_by_record_or_refused_naming_the_field(body):
    try:
        read = [
            read_change_request(record) if table == CHANGE_REQUEST else read_incident(record)
            for table, record in records_in(body)
        ]
    except InvalidRecord as exc:
        assert isinstance(exc.message, str) and exc.message
        assert all(isinstance(messages, list) for messages in exc.fields.values())
    else:
        assert read and all(isinstance(r, ChangeRequestRecord | IncidentRecord) for r in read)
        assert all(r.sys_id.isalnum() and r.sys_updated_on.tzinfo for r in read)
