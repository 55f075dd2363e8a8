"""`manage.py axes_reset` would clear every lockout with no one answerable for it: refused."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Refused: unlock named usernames or addresses instead (ledgered)."

    def handle(self, *args, **options) -> None:
        raise CommandError(
            "Signoff records every unlock in the ledger, with who and why. Unlock a username with "
            "`manage.py axes_reset_username NAME --by ADMIN --reason TEXT`, an address with "
            "`axes_reset_ip`, or on the Sign-in lockouts page (/governance/lockouts/)."
        )
