"""Create a freeze from the shell, as an administrator, and print its id."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from changes.freezes.services import FreezeInput, create_freeze
from changes.wall_time import WALL_FORMAT
from governance.exceptions import GovernanceError
from governance.models import Environment, Service, Team, User


def wall_time(value: str) -> datetime:
    """LOCAL as YYYY-MM-DDTHH:MM:SS, a wall time in the freeze's zone (no offset)."""
    try:
        return datetime.strptime(value, WALL_FORMAT)
    except ValueError:
        raise CommandError(
            f"'{value}' is not a local time; write YYYY-MM-DDTHH:MM:SS (no zone or offset)."
        ) from None


class Command(BaseCommand):
    help = (
        "Create a freeze as administrator --by: `create_freeze --name 'Weekend' "
        "--start 2026-12-04T18:00:00 --end 2026-12-07T06:00:00 --timezone Europe/Berlin "
        "--environment production --kind hard --by admin --reason '...' "
        "[--service SLUG] [--team SLUG] [--rrule FREQ=WEEKLY] [--exdate LOCAL]`. Prints its id."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--start", required=True, help="Local wall time YYYY-MM-DDTHH:MM:SS.")
        parser.add_argument("--end", required=True, help="Local wall time YYYY-MM-DDTHH:MM:SS.")
        parser.add_argument("--timezone", required=True, help="IANA zone, e.g. Europe/Berlin.")
        parser.add_argument("--environment", action="append", required=True, help="Repeatable.")
        parser.add_argument("--service", action="append", default=[], help="Repeatable.")
        parser.add_argument("--team", action="append", default=[], help="Repeatable.")
        parser.add_argument("--kind", required=True, choices=["hard", "soft"])
        parser.add_argument("--by", required=True, help="The administrator's username.")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--rrule", default="", help="RFC 5545 RRULE, e.g. FREQ=WEEKLY.")
        parser.add_argument("--exdate", action="append", default=[], help="Local start to skip.")

    def handle(self, *args, **options) -> None:
        actor = User.objects.filter(username=options["by"], is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user '{options['by']}'.")
        data = FreezeInput(
            name=options["name"],
            kind=options["kind"],
            time_zone=options["timezone"],
            local_start=wall_time(options["start"]),
            local_end=wall_time(options["end"]),
            environments=_named(Environment, options["environment"], "environment"),
            services=_named(Service, options["service"], "service"),
            teams=_named(Team, options["team"], "team"),
            reason=options["reason"],
            recurrence=options["rrule"],
            exdates=[wall_time(value) for value in options["exdate"]],
        )
        try:
            freeze = create_freeze(data=data, actor=actor)
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(freeze.pk))


def _named(model, slugs: list[str], label: str) -> list:
    found = {row.slug: row for row in model.objects.filter(slug__in=slugs)}
    missing = [slug for slug in slugs if slug not in found]
    if missing:
        raise CommandError(f"No {label} '{missing[0]}'.")
    return [found[slug] for slug in slugs]
