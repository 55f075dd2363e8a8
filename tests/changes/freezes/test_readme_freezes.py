"""The README's freeze commands run as written against the demo organisation."""

from __future__ import annotations

import io
import re
import shlex

from django.core.management import call_command

from changes.models import Freeze
from tests.ops.conftest import ROOT


def freeze_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Freezes") :]
    section = section[: section.index("\n## ", 1)]
    script = "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL))
    return [shlex.split(line) for line in script.replace("\\\n", " ").splitlines() if line]


def test_the_readme_freeze_commands_create_their_freezes(db):
    call_command("seed_demo", stdout=io.StringIO())
    commands = freeze_commands()
    assert len(commands) == 2

    for command in commands:
        assert command[:2] == [".venv/bin/python", "manage.py"]
        out = io.StringIO()
        call_command(*command[2:], stdout=out)
        assert Freeze.objects.get(pk=int(out.getvalue())).created_by.username == "admin"

    friday = Freeze.objects.get(name="Friday evenings")
    assert (friday.kind, friday.recurrence, friday.exdates) == (
        "soft",
        "FREQ=WEEKLY;BYDAY=FR",
        ["2027-12-24T16:00:00"],
    )
