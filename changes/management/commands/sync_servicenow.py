"""Pull change requests and incidents from ServiceNow's Table API, as the push applies them."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from changes.servicenow import payloads
from changes.servicenow.services import OUTCOMES, pull_table
from governance.exceptions import GovernanceError


class Command(BaseCommand):
    help = (
        "Pull ServiceNow records updated since --since (default: the newest already applied) "
        "and apply them like the push does; prints created / updated / unchanged / stale. "
        "Exits non-zero when ServiceNow cannot be read or a record is refused."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", help="ISO 8601, e.g. 2026-12-01T00:00:00Z (UTC if naive).")
        parser.add_argument(
            "--table",
            choices=payloads.TABLES,
            action="append",
            help="One table (default: change_request, then incident).",
        )
        parser.add_argument("--page-size", type=int, default=payloads.MAX_RECORDS)

    def handle(self, *args, since: str | None, table: list | None, page_size: int, **options):
        if not 1 <= page_size <= 1000:
            raise CommandError("--page-size is 1 to 1000.")
        start = _since(since)
        refused = 0
        for name in table or payloads.TABLES:
            try:
                report = pull_table(table=name, since=start, page_size=page_size)
            except GovernanceError as exc:
                raise CommandError(f"{name}: {exc.message}") from None
            counts = ", ".join(f"{report.counts[o]} {o}" for o in (*OUTCOMES, "refused"))
            self.stdout.write(f"{name}: {counts}")
            for line in report.refused:
                self.stderr.write(f"  refused {line}")
            refused += len(report.refused)
        if refused:
            raise CommandError(f"{refused} record(s) refused; the others were applied.")


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    parsed = parse_datetime(text.strip())
    if parsed is None:
        raise CommandError(f"--since {text!r} is not an ISO 8601 date and time.")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
