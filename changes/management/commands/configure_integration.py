"""Set an inbound integration's signing secrets (ledgered; shown back masked, never whole)."""

from django.core.management.base import BaseCommand, CommandError

from changes.exceptions import InvalidIncident
from changes.incidents.services import configure_integration


class Command(BaseCommand):
    help = (
        "Set the signing secrets of an integration, e.g. `configure_integration pagerduty "
        "--secret OLD --secret NEW` while rotating; the list given replaces the stored one."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", choices=["pagerduty"])
        parser.add_argument("--secret", action="append", required=True, dest="secrets")
        parser.add_argument("--actor", default="manage.py", help="Who did it, for the ledger.")

    def handle(self, *args, source: str, secrets: list[str], actor: str, **options) -> None:
        try:
            config = configure_integration(source=source, secrets=secrets, actor=actor)
        except InvalidIncident as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{config.get_source_display()}: {len(config.secrets)} signing secret(s) "
            f"({', '.join(config.masked_secrets)})."
        )
