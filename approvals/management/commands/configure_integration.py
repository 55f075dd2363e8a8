"""Configure an integration (ledgered; secrets shown back masked, never whole).

PagerDuty: its signing secrets. ServiceNow: a token it presents (generated here and printed
once; only its digest is stored), and the instance, user and password file the pull uses.
GitHub: the App's webhook secret and API URL. GitLab: the webhook's secret token (only its
digest is stored), the API URL and the API token decisions are posted with.
"""

import argparse

from django.core.management.base import BaseCommand, CommandError

from approvals.pipelines import services as pipelines
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
        "--password-file F` sets what `sync_servicenow` reads; or GitHub: "
        "`configure_integration github --secret S --api-url https://api.github.com`; or "
        "GitLab: `configure_integration gitlab --secret TOKEN --api-url "
        "https://gitlab.example.com --api-token TOKEN`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", choices=["pagerduty", "servicenow", "github", "gitlab"])
        parser.add_argument(
            "--secret",
            action="append",
            dest="secrets",
            help="PagerDuty: signing secrets. GitHub: the webhook secret. GitLab: the webhook's "
            "secret token.",
        )
        parser.add_argument(
            "--token",
            action="store_true",
            help="ServiceNow: issue a new token (printed once; the previous one stops working).",
        )
        parser.add_argument("--instance", help="ServiceNow: https://<name>.service-now.com")
        parser.add_argument("--user", help="ServiceNow: the user the pull signs in as.")
        parser.add_argument("--password-file", help="ServiceNow: a file holding its password.")
        parser.add_argument("--api-url", help="GitHub or GitLab: the API's base URL.")
        parser.add_argument("--api-token", help="GitLab: the token decisions are posted with.")
        parser.add_argument(
            "--open-releases",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="GitHub or GitLab: open a release for a run of a commit whose artifact is known.",
        )
        parser.add_argument("--reason", default="", help="Why, for the ledger.")
        parser.add_argument("--actor", default="manage.py", help="Who did it, for the ledger.")

    def handle(self, *args, source: str, actor: str, reason: str, **options) -> None:
        if source == "pagerduty":
            self._pagerduty(options["secrets"] or [], actor)
        elif source == "servicenow":
            self._servicenow(options, actor, reason)
        else:
            self._pipeline(source, options, actor, reason)

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

    def _pipeline(self, provider: str, options: dict, actor: str, reason: str) -> None:
        secrets = options["secrets"] or []
        if len(secrets) > 1:
            raise CommandError(f"{provider} has one webhook secret: give --secret once.")
        if options["api_token"] is not None and provider != "gitlab":
            raise CommandError("--api-token is for GitLab; GitHub answers as the App.")
        try:
            integration = pipelines.configure_integration(
                provider=provider,
                actor=actor,
                reason=reason,
                secret=secrets[0] if secrets else None,
                api_url=options["api_url"],
                api_token=options["api_token"],
                open_releases=options["open_releases"],
            )
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        shown = pipelines.masked_configuration(integration)
        self.stdout.write(
            f"{integration}: secret {shown['secret'] or 'not set'}, API "
            f"{shown['api_url'] or 'not set'}"
            + (f", API token {shown['api_token'] or 'not set'}" if provider == "gitlab" else "")
            + f", opens releases: {'yes' if shown['open_releases'] else 'no'}."
        )
