"""Calendar feed tokens: a secret in a URL that calendar apps fetch without signing in.

The token is `<user id>_<HMAC-SHA256 of "user id:nonce">` under a key derived from SECRET_KEY.
Only the random nonce is stored (governance.people.models.CalendarFeedKey): the profile page can
always rebuild the URL, a copy of the database alone cannot, and a new nonce ends the old URL.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from governance.ledger import services as ledger
from governance.people.models import CalendarFeedKey, User

SALT = "signoff.calendar-feed"
# Compared against when the token names nobody, so an unknown person costs the same HMAC.
_DUMMY_NONCE = "no-such-person"


def _signature(user_id: int, nonce: str) -> str:
    digest = salted_hmac(SALT, f"{user_id}:{nonce}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_for(key: CalendarFeedKey) -> str:
    """The secret the feed URL carries for this key."""
    return f"{key.user_id}_{_signature(key.user_id, key.nonce)}"


def feed_url(key: CalendarFeedKey) -> str:
    """The absolute URL calendar apps subscribe to. The feed view lives in the changes app; its
    URL is reversed by name, so governance does not import it."""
    query = urlencode({"token": token_for(key)})
    return f"{settings.SITE_URL}{reverse('changes:calendar_feed')}?{query}"


def feed_key(user: User) -> CalendarFeedKey | None:
    """The person's key, or None before they have issued a feed URL."""
    return CalendarFeedKey.objects.filter(user=user).first()


def issue_feed_key(*, user: User, actor: User | None) -> CalendarFeedKey:
    """Give `user` a new feed key (a first one, or a replacement that ends the old URL at once).

    The ledger records who issued it and when, never the token."""
    now = timezone.now()
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        replaced = CalendarFeedKey.objects.filter(user=locked).exists()
        key, _ = CalendarFeedKey.objects.update_or_create(
            user=locked, defaults={"nonce": secrets.token_urlsafe(32), "created_at": now}
        )
        ledger.append(
            kind="calendar_feed.replaced" if replaced else "calendar_feed.issued",
            subject=f"user:{locked.pk}",
            actor=actor.username if actor else "system",
            payload={"user": locked.username},
        )
    return key


def person_for_token(token: str) -> User | None:
    """The active person whose feed URL carries `token`, or None. The signature is compared in
    constant time, and a token naming nobody costs the same work as a wrong one."""
    user_part, _, signature = (token or "").partition("_")
    user_id = int(user_part) if user_part.isdigit() and len(user_part) < 19 else 0
    key = (
        CalendarFeedKey.objects.select_related("user")
        .filter(user_id=user_id, user__is_active=True)
        .first()
    )
    expected = _signature(user_id, key.nonce if key else _DUMMY_NONCE)
    matches = hmac.compare_digest(expected.encode(), signature.encode())
    return key.user if key and matches else None
