"""Revoke an API token by the prefix shown in the admin (`so_…`); the revocation is ledgered."""

from django.core.management.base import BaseCommand, CommandError

from governance.exceptions import GovernanceError
from governance.identity.models import ApiToken
from governance.identity.tokens import revoke_token
from governance.people.models import User


class Command(BaseCommand):
    help = "Revoke the active API token whose secret starts with PREFIX."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prefix", help="The token's first 8 characters, e.g. so_AbC12.")
        parser.add_argument("--reason", required=True, help="Why, for the ledger.")
        parser.add_argument(
            "--actor",
            help="Username of the administrator revoking it, for the ledger (default: system).",
        )

    def handle(self, *args, prefix: str, reason: str, actor: str | None, **options) -> None:
        # Prefixes are short: refuse to guess when more than one active token shares it.
        tokens = list(
            ApiToken.objects.filter(key_prefix=prefix, revoked_at__isnull=True).select_related(
                "user"
            )[:2]
        )
        if not tokens:
            raise CommandError(f"No active token starts with '{prefix}'.")
        if len(tokens) > 1:
            raise CommandError(f"Several active tokens start with '{prefix}'; revoke in /admin/.")
        token = tokens[0]
        try:
            revoke_token(token=token, actor=_actor(actor), reason=reason)
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Revoked {token.name} ({token.key_prefix}…) of {token.user.username}.")


def _actor(username: str | None) -> User | None:
    if username is None:
        return None
    actor = User.objects.filter(username=username, is_active=True).first()
    if actor is None:
        raise CommandError(f"No active user '{username}' to act as.")
    return actor
