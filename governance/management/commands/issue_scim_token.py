"""Print a new SCIM bearer token for an identity provider (stored hashed, shown once)."""

from django.core.management.base import BaseCommand

from governance.identity.services import issue_scim_token


class Command(BaseCommand):
    help = "Create a SCIM token for Okta / Entra ID provisioning and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="scim", help="A label, e.g. okta or entra.")

    def handle(self, *args, name: str, **options) -> None:
        _, key = issue_scim_token(name=name, actor=None)
        self.stdout.write(key)
