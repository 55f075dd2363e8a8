"""Print a person's calendar feed URL, issuing their feed key first if they have none."""

from django.core.management.base import BaseCommand, CommandError

from governance.identity import feeds
from governance.models import User


class Command(BaseCommand):
    help = (
        "Print USERNAME's iCalendar feed URL (/changes/calendar.ics?token=...). Issues a feed "
        "key the first time; --replace issues a new one, and the old URL stops working."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--replace", action="store_true", help="Replace the token (the old URL stops)."
        )

    def handle(self, *args, username: str, replace: bool, **options) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active person with username {username!r}.")
        key = feeds.feed_key(user)
        if key is None or replace:
            key = feeds.issue_feed_key(user=user, actor=None)
        self.stdout.write(feeds.feed_url(key))
