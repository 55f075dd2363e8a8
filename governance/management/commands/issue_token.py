"""Print a new API token for a person or service account (stored hashed, shown once, ledgered)."""

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import GovernanceError
from governance.identity.tokens import issue_token
from governance.people.models import User


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label to recognise the token by.")
        parser.add_argument(
            "--actor",
            help="Username of the administrator issuing it, for the ledger (default: system).",
        )

    def handle(self, *args, username: str, name: str, actor: str | None, **options) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user '{username}'.")
        try:
            _, key = issue_token(user=user, name=name, actor=_actor(actor))
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(key)


def _actor(username: str | None) -> User | None:
    if username is None:
        return None
    actor = User.objects.filter(username=username, is_active=True).first()
    if actor is None:
        raise CommandError(f"No active user '{username}' to act as.")
    return actor
