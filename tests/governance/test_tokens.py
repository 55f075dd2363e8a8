"""API tokens: issued once by `manage.py issue_token`, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.models import ApiToken
from tests import factories


def issue_token(*args: str) -> str:
    out = io.StringIO()
    call_command("issue_token", *args, stdout=out)
    return out.getvalue().strip()


def get_releases(client, key: str):
    return client.get("/api/v1/releases/", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_issue_token_prints_a_token_that_authenticates(client, approver):
    key = issue_token("alice", "--name", "laptop")

    response = get_releases(client, key)

    assert key.startswith("so_")
    assert response.status_code == 200
    token = ApiToken.objects.get(user=approver)
    assert token.name == "laptop"
    assert token.last_used_at is not None


def test_only_the_sha256_of_the_token_is_stored(approver):
    key = issue_token("alice")

    token = ApiToken.objects.get(user=approver)
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert token.key_prefix == key[:8]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert not any(key in str(value) for value in stored.values())


def test_each_token_is_different(approver):
    assert issue_token("alice") != issue_token("alice")
    assert ApiToken.objects.filter(user=approver).count() == 2


def test_issue_token_for_an_unknown_user_fails(db):
    with pytest.raises(CommandError) as excinfo:
        issue_token("nobody")

    assert str(excinfo.value) == "No active user 'nobody'."
    assert ApiToken.objects.count() == 0


def test_issue_token_for_a_deactivated_user_fails(approver):
    approver.is_active = False
    approver.save(update_fields=["is_active"])

    with pytest.raises(CommandError, match=r"^No active user 'alice'\.$"):
        issue_token("alice")

    assert ApiToken.objects.count() == 0


def test_a_revoked_token_no_longer_authenticates(client, approver):
    key = issue_token("alice")
    ApiToken.objects.filter(user=approver).update(revoked_at=timezone.now())

    response = get_releases(client, key)

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "authentication_failed",
            "message": "Invalid, revoked or expired token.",
            "fields": {},
        }
    }


def test_a_token_of_a_deactivated_user_no_longer_authenticates(client, approver):
    key = factories.token_for(approver)
    approver.is_active = False
    approver.save(update_fields=["is_active"])

    assert get_releases(client, key).status_code == 401
