"""Export the ledger's approval events to the data lake (docs/lake.md)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting.lake.destinations import DEFAULT_DESTINATION, LakeError
from reporting.lake.exporter import export_lake


def utc_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since-date must be a date as YYYY-MM-DD, not '{value}'.") from None


class Command(BaseCommand):
    help = (
        "Write the approval events recorded since the last export as CloudEvents (gzip JSON "
        "Lines) and Parquet, one folder per UTC date. Running it again writes nothing new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--destination",
            default=DEFAULT_DESTINATION,
            help=f"Storage alias in STORAGES (default '{DEFAULT_DESTINATION}').",
        )
        parser.add_argument(
            "--since-date",
            help="Export again from this UTC date (YYYY-MM-DD): that date's partitions and later "
            "ones are written anew. On a new destination, older entries are left out.",
        )

    def handle(self, *args, destination: str, since_date: str | None, **options) -> None:
        since = utc_date(since_date) if since_date else None
        try:
            run = export_lake(destination, since=since)
        except LakeError as exc:
            raise CommandError(str(exc)) from exc
        if not run.files:
            self.stdout.write(f"{destination}: nothing new after #{run.through_seq}.")
            return
        self.stdout.write(
            f"{destination}: entries #{run.from_seq + 1} to #{run.through_seq}, "
            f"{run.events} events in {len(run.files)} files."
        )
