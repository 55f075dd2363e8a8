"""Reading ServiceNow's Table API records, in either of the shapes it writes them.

Plain (`sysparm_display_value=false`, the default): every value a string, choices as their codes
(`"state": "-2"`), references as `{"link": ..., "value": <sys_id>}` or `""` when empty.
`sysparm_display_value=all`: every field `{"display_value": ..., "value": ...}`, references with
a `link` as well. Only `value` is trusted for codes and dates (display values follow the reading
user's language, format and time zone); display values are read for people's names only.
Nothing here touches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from changes.servicenow.exceptions import InvalidRecord

CHANGE_REQUEST = "change_request"
INCIDENT = "incident"
TABLES = (CHANGE_REQUEST, INCIDENT)
MAX_RECORDS = 100  # per push; the pull pages by the same size

# ServiceNow change_request.state → Signoff's change states (codes as the Table API sends them).
CHANGE_STATES = {
    "-5": ("new", "New"),
    "-4": ("assess", "Assess"),
    "-3": ("authorise", "Authorize"),
    "-2": ("scheduled", "Scheduled"),
    "-1": ("implement", "Implement"),
    "0": ("review", "Review"),
    "3": ("closed", "Closed"),
    "4": ("cancelled", "Canceled"),
}
# incident.state → Signoff's incident statuses; on hold still needs someone, so it stays open.
INCIDENT_STATES = {
    "1": ("triggered", "New"),
    "2": ("acknowledged", "In Progress"),
    "3": ("acknowledged", "On Hold"),
    "6": ("resolved", "Resolved"),
    "7": ("resolved", "Closed"),
    "8": ("resolved", "Canceled"),
}
RISKS = {"1": "high", "2": "high", "3": "moderate", "4": "low"}  # Very High, High, Moderate, Low
IMPACTS = {"1": "high", "2": "moderate", "3": "low"}  # High, Medium, Low
CHANGE_TYPES = ("standard", "normal", "emergency")
CLOSE_CODES = ("successful", "successful_issues", "unsuccessful")
PRIORITIES = ("1", "2", "3", "4", "5")  # Critical, High, Moderate, Low, Planning
SERVICE_FIELDS = ("cmdb_ci", "business_service")
SYS_ID = re.compile(r"[0-9a-f]{32}")
_PEOPLE = tuple(
    f"{who}{key}" for who in ("assigned_to", "requested_by") for key in ("", ".user_name", ".email")
)
# What the pull asks for (`sysparm_fields`): what is read here, people dot-walked to a key.
FIELDS = {
    CHANGE_REQUEST: (
        *("sys_id", "sys_updated_on", "sys_class_name", "number", "short_description"),
        *("description", "type", "state", "risk", "impact", "start_date", "end_date"),
        *_PEOPLE,
        *SERVICE_FIELDS,
        *("implementation_plan", "test_plan", "backout_plan", "close_code", "close_notes"),
    ),
    INCIDENT: (
        *("sys_id", "sys_updated_on", "sys_class_name", "number", "short_description"),
        *("state", "priority", "opened_at"),
        *SERVICE_FIELDS,
    ),
}


@dataclass(frozen=True)
class ChangeRequestRecord:
    """A change_request as Signoff reads it."""

    sys_id: str
    sys_updated_on: datetime
    number: str
    title: str
    description: str
    type: str
    state: str
    state_label: str
    risk: str
    impact: str
    planned_start: datetime | None
    planned_end: datetime | None
    assigned_to: str | None  # a name; None when the record only carries a sys_id
    requested_by: str | None
    service_ids: tuple[str, ...]
    implementation_plan: str
    test_plan: str
    backout_plan: str
    close_code: str
    close_notes: str


@dataclass(frozen=True)
class IncidentRecord:
    """An incident as Signoff reads it."""

    sys_id: str
    sys_updated_on: datetime
    number: str
    title: str
    status: str
    state_label: str
    priority: str  # "1".."5", or "" when the record has none
    opened_at: datetime | None
    service_ids: tuple[str, ...]


def records_in(body: object) -> list[tuple[str, dict]]:
    """The (table, record) pairs a push carries.

    Accepted: `{"table": T, "record": {...}}`, `{"table": T, "result": [...] | {...}}`, the
    Table API's own `{"result": ...}`, or one bare record; without `table` each record says its
    table in `sys_class_name`.
    """
    if not isinstance(body, dict):
        raise InvalidRecord("The body is a JSON object: a record, or {table, record|result}.")
    table = body.get("table")
    if table is not None and table not in TABLES:
        raise InvalidRecord(
            f"`table` is {str(table)[:40]!r}; it is change_request or incident.",
            fields={"table": ["change_request or incident."]},
        )
    if "record" in body:
        items = [body["record"]]
    elif "result" in body:
        result = body["result"]
        items = result if isinstance(result, list) else [result]
    else:
        items = [body]
    if not items:
        raise InvalidRecord("The body carries no record.")
    if len(items) > MAX_RECORDS:
        raise InvalidRecord(f"At most {MAX_RECORDS} records a request; send the rest separately.")
    return [(_table_of(item, table, index), item) for index, item in enumerate(items)]


def _table_of(item: object, table: str | None, index: int) -> str:
    if not isinstance(item, dict):
        raise InvalidRecord(f"Record {index} is not a JSON object.")
    declared = value(item.get("sys_class_name"))
    if table and declared and declared != table:
        raise InvalidRecord(f"Record {index} is a {declared[:40]!r} record, not a {table}.")
    found = table or declared
    if found not in TABLES:
        raise InvalidRecord(
            f"Record {index}: say `table` (change_request or incident) or send the record's "
            "sys_class_name.",
            fields={"table": ["change_request or incident."]},
        )
    return found


def value(field: object) -> str:
    """A field's value whichever shape it comes in: the code, the sys_id of a reference."""
    if isinstance(field, dict):
        field = field.get("value")
    if field is None:
        return ""
    if isinstance(field, bool | dict | list):
        raise InvalidRecord(f"A field holds {type(field).__name__} where a value was expected.")
    return str(field).strip()


def display(field: object) -> str | None:
    """What a person reads (a name for a reference); None when the shape has no display value."""
    if isinstance(field, dict):
        shown = field.get("display_value")
        return str(shown).strip() if shown is not None else None
    # A bare string where ServiceNow would send a reference: `sysparm_display_value=true`.
    return str(field).strip() if isinstance(field, str) else None


def read_change_request(record: dict) -> ChangeRequestRecord:
    """Validate and read a change_request; InvalidRecord names the first field that is wrong."""
    number = _required(record, "number", 64)
    state_code = value(record.get("state"))
    if state_code not in CHANGE_STATES:
        raise _bad("state", f"{number}: unknown change state {state_code[:20]!r}.")
    start = timestamp(record.get("start_date"), "start_date")
    end = timestamp(record.get("end_date"), "end_date")
    if (start is None) != (end is None) or (start and end and end <= start):
        raise _bad("end_date", f"{number}: the planned window must have a start and a later end.")
    state, label = CHANGE_STATES[state_code]
    return ChangeRequestRecord(
        sys_id=_sys_id(record),
        sys_updated_on=_updated_on(record),
        number=number,
        title=(value(record.get("short_description")) or number)[:200],
        description=value(record.get("description")),
        type=_choice(record, "type", CHANGE_TYPES, number) or "normal",
        state=state,
        state_label=label,
        risk=_coded(record, "risk", RISKS, number),
        impact=_coded(record, "impact", IMPACTS, number),
        planned_start=start,
        planned_end=end,
        assigned_to=_person(record, "assigned_to"),
        requested_by=_person(record, "requested_by"),
        service_ids=_service_ids(record),
        implementation_plan=value(record.get("implementation_plan")),
        test_plan=value(record.get("test_plan")),
        backout_plan=value(record.get("backout_plan")),
        # A close code this instance added itself is kept out rather than refusing the record.
        close_code=code if (code := value(record.get("close_code"))) in CLOSE_CODES else "",
        close_notes=value(record.get("close_notes")),
    )


def read_incident(record: dict) -> IncidentRecord:
    """Validate and read an incident; InvalidRecord names the first field that is wrong."""
    sys_id = _sys_id(record)
    number = value(record.get("number"))[:64] or sys_id
    state_code = value(record.get("state"))
    if state_code not in INCIDENT_STATES:
        raise _bad("state", f"{number}: unknown incident state {state_code[:20]!r}.")
    priority = value(record.get("priority"))
    if priority and priority not in PRIORITIES:
        raise _bad("priority", f"{number}: unknown priority {priority[:20]!r} (1 to 5).")
    status, label = INCIDENT_STATES[state_code]
    return IncidentRecord(
        sys_id=sys_id,
        sys_updated_on=_updated_on(record),
        number=number,
        title=(value(record.get("short_description")) or number)[:500],
        status=status,
        state_label=label,
        priority=priority,
        opened_at=timestamp(record.get("opened_at"), "opened_at"),
        service_ids=_service_ids(record),
    )


def timestamp(field: object, name: str) -> datetime | None:
    """ServiceNow's "YYYY-MM-DD HH:MM:SS" (UTC through the Table API) as an aware datetime."""
    text = value(field)
    if not text:
        return None
    try:
        parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise _bad(name, f"{name} is {text[:40]!r}, not YYYY-MM-DD HH:MM:SS.") from None
    return parsed.replace(tzinfo=UTC)


def _sys_id(record: dict) -> str:
    sys_id = _required(record, "sys_id", 64)
    if not sys_id.isalnum() or not sys_id.isascii():
        raise _bad("sys_id", "sys_id is letters and digits (32 hex characters in ServiceNow).")
    return sys_id


def _updated_on(record: dict) -> datetime:
    updated = timestamp(record.get("sys_updated_on"), "sys_updated_on")
    if updated is None:
        raise _bad("sys_updated_on", "sys_updated_on is required (it orders the updates).")
    return updated


def _required(record: dict, name: str, length: int) -> str:
    text = value(record.get(name))
    if not text:
        raise _bad(name, f"{name} is required.")
    if len(text) > length or not text.isprintable():
        raise _bad(name, f"{name} is 1 to {length} printable characters.")
    return text


def _choice(record: dict, name: str, allowed: tuple[str, ...], number: str) -> str:
    text = value(record.get(name)).lower()
    if text and text not in allowed:
        raise _bad(name, f"{number}: {name} {text[:20]!r} is not one of {', '.join(allowed)}.")
    return text


def _coded(record: dict, name: str, codes: dict[str, str], number: str) -> str:
    code = value(record.get(name))
    if not code:
        return "moderate"
    if code not in codes:
        raise _bad(name, f"{number}: unknown {name} code {code[:20]!r}.")
    return codes[code]


def _person(record: dict, name: str) -> str | None:
    """Who a user reference names, best key first: the dot-walked e-mail or user name (which
    Signoff matches exactly), else the display name. "" when nobody is named; None when only
    a sys_id is known (the plain shape without dot-walked fields)."""
    if not value(record.get(name)):
        return ""
    for key in (f"{name}.email", f"{name}.user_name"):
        if known := value(record.get(key)):
            return known
    field = record.get(name)
    if isinstance(field, str) and SYS_ID.fullmatch(field.strip()):
        return None  # a bare sys_id (`sysparm_exclude_reference_link`, a Business Rule's getValue)
    return display(field)


def _service_ids(record: dict) -> tuple[str, ...]:
    ids = (value(record.get(name))[:100] for name in SERVICE_FIELDS)
    return tuple(dict.fromkeys(i for i in ids if i))


def _bad(name: str, message: str) -> InvalidRecord:
    return InvalidRecord(message, fields={name: [message]})
