"""Configure an inbound integration (ledgered; secrets shown back masked, never whole).

PagerDuty: its signing secrets. ServiceNow: a token it presents (generated here and printed
once; only its digest is stored), and the instance, user and password file the pull uses.
"""

from django.core.management.base import BaseCommand, CommandError

from changes.exceptions import InvalidIncident
from changes.incidents.services import configure_integration
from changes.servicenow import services as servicenow
from governance.exceptions import GovernanceError


class Command(BaseCommand):
    help = (
        "Set the signing secrets of PagerDuty, e.g. `configure_integration pagerduty "
        "--secret OLD --secret NEW` while rotating (the list given replaces the stored one); "
        "or configure ServiceNow: `configure_integration servicenow --token` prints a new "
        "token for its pushes, `--instance https://acme.service-now.com --user U "
        "--password-file F` sets what `sync_servicenow` reads."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", choices=["pagerduty", "servicenow"])
        parser.add_argument("--secret", action="append", dest="secrets", help="PagerDuty.")
        parser.add_argument(
            "--token",
            action="store_true",
            help="ServiceNow: issue a new token (printed once; the previous one stops working).",
        )
        parser.add_argument("--instance", help="ServiceNow: https://<name>.service-now.com")
        parser.add_argument("--user", help="ServiceNow: the user the pull signs in as.")
        parser.add_argument("--password-file", help="ServiceNow: a file holding its password.")
        parser.add_argument("--reason", default="", help="Why, for the ledger.")
        parser.add_argument("--actor", default="manage.py", help="Who did it, for the ledger.")

    def handle(self, *args, source: str, actor: str, reason: str, **options) -> None:
        if source == "pagerduty":
            self._pagerduty(options["secrets"] or [], actor)
        else:
            self._servicenow(options, actor, reason)

    def _pagerduty(self, secrets: list[str], actor: str) -> None:
        if not secrets:
            raise CommandError("Give PagerDuty's signing secret(s) with --secret.")
        try:
            config = configure_integration(source="pagerduty", secrets=secrets, actor=actor)
        except InvalidIncident as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{config.get_source_display()}: {len(config.secrets)} signing secret(s) "
            f"({', '.join(config.masked_secrets)})."
        )

    def _servicenow(self, options: dict, actor: str, reason: str) -> None:
        pull = [options["instance"], options["user"], options["password_file"]]
        if any(pull) and not all(pull):
            raise CommandError("Give --instance, --user and --password-file together.")
        if not options["token"] and not any(pull):
            raise CommandError("Give --token, or --instance, --user and --password-file.")
        try:
            if all(pull):
                config = servicenow.configure_pull(
                    instance_url=pull[0],
                    username=pull[1],
                    password_file=pull[2],
                    actor=actor,
                    reason=reason,
                )
                self.stdout.write(f"ServiceNow: pulls from {config.instance_url} as {pull[1]}.")
            if options["token"]:
                token = servicenow.issue_token(actor=actor, reason=reason)
                self.stdout.write(
                    "ServiceNow token (shown once; send it as Authorization: Bearer <token>):"
                )
                self.stdout.write(token)
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
