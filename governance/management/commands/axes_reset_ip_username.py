"""Unlock a username at an address (ledgered):
`manage.py axes_reset_ip_username ADDRESS USERNAME --by ADMIN --reason TEXT`."""

from governance.management.commands._unlock import UnlockCommand


class Command(UnlockCommand):
    help = "Lift the sign-in lockouts of a username and an address, as an administrator (ledgered)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("ip")
        parser.add_argument("username")
        super().add_arguments(parser)

    def handle(self, *args, **options) -> None:
        self.report(self.unlock(options, username=options["username"], ip=options["ip"]))
