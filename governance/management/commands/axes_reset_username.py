"""Unlock usernames (ledgered): `manage.py axes_reset_username NAME... --by ADMIN --reason TEXT`."""

from governance.management.commands._unlock import UnlockCommand


class Command(UnlockCommand):
    help = "Lift the sign-in lockout of usernames, as an administrator, with a reason (ledgered)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="+")
        super().add_arguments(parser)

    def handle(self, *args, **options) -> None:
        self.report(sum(self.unlock(options, username=name) for name in options["username"]))
