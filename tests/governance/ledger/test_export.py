"""The export PostgreSQL writes says exactly what the stored entries say."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from governance.ledger import export
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

PAYLOADS = [
    {},
    {"rationale": "Zürich \u2014 \u201cquoted\u201d, tab\there, back\\slash, newline\nend"},
    {"nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}, "count": 12345678901234},
    {"emoji": "\U0001f680", "control": "\u0001", "html": "<b>&amp;</b>"},
]


def test_each_exported_line_is_the_stored_entry_and_verifies():
    with transaction.atomic():
        for number, payload in enumerate(PAYLOADS):
            ledger.append(
                kind="test.export", subject=f"test:{number}", actor="ünïcode", payload=payload
            )
    header, *lines = export.export_lines()

    exported = [json.loads(line) for line in lines]
    assert exported == list(ledger.stored_entries())
    assert json.loads(header)["entries"] == len(PAYLOADS)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    verified = list(ledger_format.verify_entries(exported, ledger.public_keys()))
    assert verified == [1, 2, 3, 4]


def test_the_chunks_are_the_lines_joined_a_batch_at_a_time(monkeypatch):
    monkeypatch.setattr(export, "EXPORT_BATCH", 2)
    with transaction.atomic():
        for number in range(5):
            ledger.append(kind="test.export", subject=f"test:{number}", actor="", payload={})
    chunks = list(export.export_chunks())

    assert [chunk.count("\n") for chunk in chunks] == [1, 2, 2, 1]
    assert "".join(chunks).splitlines()[1:] == [
        line.rstrip("\n") for line in list(export.export_lines())[1:]
    ]
