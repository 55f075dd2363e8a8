"""The demo's planned changes: loaded idempotently after seed_demo, with the conflicts the
README's calendar walkthrough points at."""

from __future__ import annotations

import io

from django.core.management import call_command

from changes.calendar.conflicts import change_conflicts
from changes.models import ChangeRecord


def test_the_demo_calendar_is_idempotent_and_shows_each_kind_of_conflict(db):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo_calendar", stdout=io.StringIO())
    call_command("seed_demo_calendar", stdout=io.StringIO())

    changes = {c.ref: c for c in ChangeRecord.objects.filter(ref__startswith="CHG009")}
    assert {ref: c.state for ref, c in changes.items()} == {
        "CHG0090001": "scheduled",
        "CHG0090002": "authorise",
        "CHG0090003": "new",
        "CHG0090004": "assess",
        "CHG0090005": "cancelled",
    }
    kinds = {ref: {c.kind for c in change_conflicts(c)} for ref, c in changes.items()}
    assert "overlap" in kinds["CHG0090001"]
    assert "freeze" in kinds["CHG0090003"]
    assert "approvers" in kinds["CHG0090004"]
    assert kinds["CHG0090005"] == set()
