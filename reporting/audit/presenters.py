"""What each row of the audit trail shows: time, who, kind, what it is about (with a link where
Signoff has a page for it) and a short summary of what changed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from auditlog.models import LogEntry
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

MANAGER_TEXT = re.compile(r"^\w+\.\w+\.None$")
SUMMARY_LENGTH = 200
VALUE_LENGTH = 60

# Ledger subjects "<prefix>:<id>" and the page each one has.
SUBJECT_PAGES = {
    "release": "approvals:release_detail",
    "change": "changes:change_detail",
    "cab_meeting": "cab:meeting_detail",
    "freeze": "changes:freeze_detail",
    "review": "changes:review_detail",
}
ACTIONS = {
    LogEntry.Action.CREATE: "created",
    LogEntry.Action.UPDATE: "updated",
    LogEntry.Action.DELETE: "deleted",
    LogEntry.Action.ACCESS: "accessed",
}


@dataclass(frozen=True)
class TrailRow:
    ref: str  # "ledger:<seq>" or "log:<id>": which record of which source
    at: datetime
    who: str
    kind: str
    about: str
    url: str
    summary: str
    seq: int | None = None
    entry_hash: str = ""

    @property
    def is_ledger(self) -> bool:
        return self.seq is not None


def present(row) -> TrailRow:
    return _log_row(row) if isinstance(row, LogEntry) else _ledger_row(row)


def _shorten(text: str) -> str:
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


def subject_url(subject: str) -> str:
    prefix, _, pk = subject.partition(":")
    name = SUBJECT_PAGES.get(prefix)
    if not name or not pk.isdigit():
        return ""
    return reverse(name, args=[int(pk)])


def _value(value) -> str:
    # Long values (digests, nested documents) are cut so that every key gets a look in.
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_LENGTH else text[: VALUE_LENGTH - 21] + "…"


def _ledger_row(entry: dict) -> TrailRow:
    payload = entry["payload"] if isinstance(entry["payload"], dict) else {}
    # Empty values say nothing, and the frozen plan of a request is long and shown on the
    # release page: both are left out (the plan is only named).
    parts = [
        f"{key}: {_value(value)}"
        for key, value in payload.items()
        if key != "plan" and value not in (None, "", [], {})
    ]
    if "plan" in payload:
        parts.append("plan: frozen onto the request")
    return TrailRow(
        ref=f"ledger:{entry['seq']}",
        at=entry["recorded_at"],
        who=entry["actor"] or "system",
        kind=entry["kind"],
        about=entry["subject"],
        url=subject_url(entry["subject"]),
        summary=_shorten("; ".join(parts)),
        seq=entry["seq"],
        entry_hash=entry["entry_hash"],
    )


def _log_row(log: LogEntry) -> TrailRow:
    changes = log.changes if isinstance(log.changes, dict) else {}
    parts = [_change(log.action, field, values) for field, values in changes.items()]
    parts = [part for part in parts if part]
    content_type = log.content_type
    return TrailRow(
        ref=f"log:{log.pk}",
        at=log.timestamp,
        who=log.actor.username if log.actor else "system",
        kind=f"configuration change ({ACTIONS.get(log.action, log.action)})",
        about=f"{content_type.name}: {log.object_repr}",
        url="" if log.action == LogEntry.Action.DELETE else _admin_url(log),
        summary=_shorten("; ".join(parts)),
    )


def _change(action: int, field: str, values) -> str:
    """One field's change: the new value of a created object, the old of a deleted one (empty
    values left out), both for an update."""
    if not (isinstance(values, list) and len(values) == 2):
        return f"{field}: {_value(values)}"
    old, new = values
    if action in (LogEntry.Action.CREATE, LogEntry.Action.DELETE):
        value = new if action == LogEntry.Action.CREATE else old
        return "" if _is_empty(value) else f"{field}: {_value(value)}"
    return f"{field}: {_value(old)} → {_value(new)}"


def _is_empty(value) -> bool:
    # auditlog writes a reverse relation it cannot read as "<app>.<Model>.None".
    return value in (None, "None", "") or bool(isinstance(value, str) and MANAGER_TEXT.match(value))


def _admin_url(log: LogEntry) -> str:
    """The object's page in Django admin, when the model is administered there."""
    model = log.content_type.model_class()
    if model is None or not admin.site.is_registered(model) or log.object_id is None:
        return ""
    meta = model._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[log.object_id])
    except NoReverseMatch:
        return ""
