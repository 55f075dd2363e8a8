"""Unlock addresses (ledgered): `manage.py axes_reset_ip ADDRESS... --by ADMIN --reason TEXT`."""

from governance.management.commands._unlock import UnlockCommand


class Command(UnlockCommand):
    help = "Lift the sign-in lockout of addresses, as an administrator, with a reason (ledgered)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("ip", nargs="+")
        super().add_arguments(parser)

    def handle(self, *args, **options) -> None:
        self.report(sum(self.unlock(options, ip=address) for address in options["ip"]))
