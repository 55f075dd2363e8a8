"""The demo organisation's planned changes for the change calendar (idempotent).

Planned around the day of the first run, so the calendar's current month shows them: two
payments-ledger changes that overlap, a checkout change inside the weekend freeze, a night-time
identity change nobody is at work for, and a cancelled one. Run after seed_demo (the people,
services and freezes must exist); the payroll-saas vendor release comes from seed_demo_releases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from changes.models import ChangeRecord
from changes.records.services import ChangeInput, move_change, open_change
from governance.models import Service, User

# ref, title, service, zone, days from today, local hour, hours, final state
CHANGES = [
    ("CHG0090001", "Rebuild the ledger's posting index", "payments-ledger", "Europe/London",
     1, 10, 2, "scheduled"),
    ("CHG0090002", "Archive settled postings of 2024", "payments-ledger", "Europe/London",
     1, 11, 3, "authorise"),
    ("CHG0090003", "New pricing rules in checkout", "checkout-service", "Europe/London",
     "friday", 19, 2, "new"),
    ("CHG0090004", "Move the session store to the new cluster", "identity-service",
     "Asia/Singapore", 2, 2, 2, "assess"),
    ("CHG0090005", "Replace the edge certificates", "ingress-gateway", "UTC", 3, 9, 1,
     "cancelled"),
]  # fmt: skip
# The hand moves that lead from new to each final state.
PATHS = {
    "new": [],
    "assess": ["assess"],
    "authorise": ["assess", "authorise"],
    "scheduled": ["assess", "scheduled"],
    "cancelled": ["cancelled"],
}


class Command(BaseCommand):
    help = "Plan the demo's changes around today for the change calendar (idempotent)."

    def handle(self, *args, **options) -> None:
        actor = User.objects.filter(username="admin").first()
        if actor is None:
            raise CommandError("Run seed_demo first: the demo administrator 'admin' is missing.")
        today = timezone.now().date()
        planned = 0
        for ref, title, slug, zone, days, hour, hours, state in CHANGES:
            if ChangeRecord.objects.filter(ref=ref).exists():
                continue
            # The checkout change goes on the coming Friday evening, inside the weekend freeze.
            ahead = (4 - today.weekday()) % 7 or 7 if days == "friday" else days
            day = today + timedelta(days=ahead)
            start = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
            data = ChangeInput(
                ref=ref,
                title=title,
                services=[Service.objects.get(slug=slug)],
                planned_start=start,
                planned_end=start + timedelta(hours=hours),
                time_zone=zone,
            )
            change = open_change(data=data, actor=actor)
            for step in PATHS[state]:
                change = move_change(change=change, to=step, actor=actor, reason="Demo plan")
            planned += 1
        self.stdout.write(f"Demo calendar: {planned} changes planned.")
