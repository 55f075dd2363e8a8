"""manage.py create_freeze: creates a freeze as the named administrator and prints its id."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from changes.models import Freeze
from governance.models import LedgerEntry


def create(*args: str) -> str:
    out = io.StringIO()
    call_command("create_freeze", *args, stdout=out)
    return out.getvalue().strip()


ARGS = [
    "--name", "Weekend freeze",
    "--start", "2026-12-04T18:00:00",
    "--end", "2026-12-07T06:00:00",
    "--timezone", "Europe/Berlin",
    "--environment", "production",
    "--kind", "hard",
    "--by", "ada",
    "--reason", "No weekend releases",
]  # fmt: skip


def test_the_command_creates_a_freeze_and_prints_its_id(administrator, production, service):
    printed = create(*ARGS, "--service", "payments-api", "--rrule", "FREQ=WEEKLY")

    freeze = Freeze.objects.get()
    assert printed == str(freeze.pk)
    assert freeze.local_start.isoformat() == "2026-12-04T18:00:00"
    assert freeze.time_zone == "Europe/Berlin"
    assert [s.slug for s in freeze.services.all()] == ["payments-api"]
    assert freeze.recurrence == "FREQ=WEEKLY"
    assert LedgerEntry.objects.get(kind="freeze.created").actor == "ada"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--by", "alice"], "Only Signoff administrators"),
        (["--by", "nobody"], "No active user 'nobody'"),
        (["--start", "2026-12-04 18:00"], "is not a local time"),
        (["--timezone", "Europe/Atlantis"], "Unknown time zone"),
        (["--environment", "moon"], "No environment 'moon'"),
        (["--service", "nope"], "No service 'nope'"),
        (["--rrule", "FREQ=MINUTELY"], "at most daily"),
        (["--end", "2026-12-04T17:00:00"], "after the start"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_error_and_nothing_written(
    administrator, approver, production, service, change, message
):
    args = list(ARGS)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args and flag not in ("--service",):
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    ledger = LedgerEntry.objects.count()

    with pytest.raises(CommandError, match=message):
        create(*args)

    assert Freeze.objects.count() == 0
    assert LedgerEntry.objects.count() == ledger
