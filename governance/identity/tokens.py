"""API tokens: issued to a person or service account, shown once, revocable, ledgered."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from governance.authority.services import is_administrator
from governance.exceptions import (
    PermissionDenied,
)
from governance.identity.models import ApiToken
from governance.ledger import services as ledger
from governance.people.models import User


def issue_token(*, user: User, name: str, actor: User | None = None) -> tuple[ApiToken, str]:
    """Create an API token, ledgered; returns the row and the secret, never stored or shown again.

    A token carries its owner's authority: only the owner or an administrator asks for one.
    """
    if actor is not None and actor.pk != user.pk and not is_administrator(actor):
        raise PermissionDenied("Only administrators issue tokens for someone else.")
    key = ApiToken.generate_key()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, key_hash=ApiToken.hash_key(key), key_prefix=key[:8]
        )
        ledger.append(
            kind="token.issued",
            subject=f"api_token:{token.pk}",
            actor=actor.username if actor else "system",
            payload=_token_payload(token),
        )
    return token, key


def revoke_token(*, token: ApiToken, actor: User | None, reason: str) -> bool:
    """Stop a token working at once; False when it was already revoked (nothing is written)."""
    if actor is not None and actor.pk != token.user_id and not is_administrator(actor):
        raise PermissionDenied("Only administrators revoke someone else's token.")
    if not reason.strip():
        raise PermissionDenied(
            "A reason is required to revoke a token.", fields={"reason": ["Required."]}
        )
    with transaction.atomic():
        revoked = _revoke_token(token, actor.username if actor else "system", reason)
    token.refresh_from_db(fields=["revoked_at"])
    return revoked


def revoke_user_tokens(*, user: User, source: str, reason: str) -> int:
    """Revoke every token of a person being switched off, for good: reactivating them later
    brings no token back. Joins the caller's transaction; returns how many were revoked."""
    with transaction.atomic():
        tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True).select_related("user")
        return sum(_revoke_token(token, source, reason) for token in tokens)


def _revoke_token(token: ApiToken, actor: str, reason: str) -> bool:
    # Conditional update: a token revoked twice at once (two administrators, a retried
    # deactivation) is revoked and ledgered once.
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        return False
    ledger.append(
        kind="token.revoked",
        subject=f"api_token:{token.pk}",
        actor=actor,
        payload={**_token_payload(token), "reason": reason},
    )
    return True


def _token_payload(token: ApiToken) -> dict:
    return {"name": token.name, "prefix": token.key_prefix, "owner": token.user.username}


def authenticate_token(key: str) -> ApiToken | None:
    """The active token for a presented secret, recording its use at most once a minute."""
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(key_hash=ApiToken.hash_key(key))
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
