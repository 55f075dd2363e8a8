"""django-axes' reset commands, taken over so that an unlock from the shell is what an unlock on
the Sign-in lockouts page is: an administrator's act with a reason, in the ledger.

Signoff's `governance` app is listed before `axes` in INSTALLED_APPS, so these commands are the
ones `manage.py axes_reset_*` runs.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import GovernanceError
from governance.identity.lockouts import unlock_account
from governance.people.selectors import person_named


class UnlockCommand(BaseCommand):
    """Lift lockouts through `unlock_account`, as the administrator named by --by."""

    def add_arguments(self, parser) -> None:
        parser.add_argument("--by", required=True, help="the administrator unlocking (username)")
        parser.add_argument("--reason", required=True, help="why, for the ledger")

    def unlock(self, options: dict, *, username: str | None = None, ip: str | None = None) -> int:
        actor = person_named(options["by"])
        if actor is None:
            raise CommandError(f"No person named {options['by']!r}.")
        try:
            return unlock_account(username=username, ip=ip, actor=actor, reason=options["reason"])
        except GovernanceError as exc:
            raise CommandError(exc.message) from None

    def report(self, cleared: int) -> None:
        self.stdout.write(f"Unlocked: {cleared} failed sign-in(s) cleared, recorded in the ledger.")
