"""Print a new API token for a person or service account (stored hashed, shown once)."""

from django.core.management.base import BaseCommand, CommandError

from governance.models import User
from governance.services import issue_token


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label to recognise the token by.")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user '{username}'.")
        _, key = issue_token(user=user, name=name)
        self.stdout.write(key)
