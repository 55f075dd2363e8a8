"""The demo organisation's freezes (idempotent): a weekend freeze on production and an
end-of-quarter freeze for the web services.

Neither holds payments-api or payments-ledger: their releases are the README's walkthrough,
which must work on any day of the year.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand

from changes.freezes.services import FreezeInput, create_freeze
from changes.models import Freeze
from governance.models import Environment, Team, User

FREEZES = [
    # name, kind, zone, start, end (local wall times), rule, environments, teams, reason
    (
        "Weekend freeze",
        "hard",
        "Europe/London",
        datetime(2026, 1, 2, 18, 0),
        datetime(2026, 1, 5, 6, 0),
        "FREQ=WEEKLY;BYDAY=FR",
        ["production"],
        ["web", "platform"],
        "Nobody is on call for the web and platform services at weekends; only emergency "
        "changes go out between Friday 18:00 and Monday 06:00 (London).",
    ),
    (
        "End-of-quarter freeze",
        "soft",
        "America/New_York",
        datetime(2026, 3, 25, 0, 0),
        datetime(2026, 4, 1, 0, 0),
        "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-7",
        ["staging", "production"],
        ["web"],
        "Quarter-end trading: web releases in the last week of each quarter also need a "
        "release manager's approval.",
    ),
]


class Command(BaseCommand):
    help = "Load the demo freezes (idempotent)."

    def handle(self, *args, **options) -> None:
        admin = User.objects.get(username="admin")
        for name, kind, zone, start, end, rule, environments, teams, reason in FREEZES:
            if Freeze.objects.filter(name=name).exists():
                continue
            create_freeze(
                data=FreezeInput(
                    name=name,
                    kind=kind,
                    time_zone=zone,
                    local_start=start,
                    local_end=end,
                    recurrence=rule,
                    environments=list(Environment.objects.filter(slug__in=environments)),
                    teams=list(Team.objects.filter(slug__in=teams)),
                    reason=reason,
                ),
                actor=admin,
            )
        self.stdout.write(f"Freezes: {Freeze.objects.count()}.")
