"""API tokens: issued once by `manage.py issue_token`, stored only as a SHA-256, their life
cycle (issued, revoked, revoked with their deactivated owner) in the ledger."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from governance.exceptions import PermissionDenied
from governance.identity import services as identity
from governance.identity import tokens
from governance.models import ApiToken, LedgerEntry, Role, User
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


# --- Life cycle in the ledger --------------------------------------------------------------------


def revoke_token(*args: str) -> str:
    out = io.StringIO()
    call_command("revoke_token", *args, stdout=out)
    return out.getvalue().strip()


def token_entries() -> list[tuple[str, str, str, dict]]:
    entries = LedgerEntry.objects.filter(kind__startswith="token.").order_by("seq")
    return list(entries.values_list("kind", "subject", "actor", "payload"))


def test_issuing_a_token_is_ledgered(approver):
    key = issue_token("alice", "--name", "laptop")

    token = ApiToken.objects.get(user=approver)
    assert token_entries() == [
        (
            "token.issued",
            f"api_token:{token.pk}",
            "system",
            {"name": "laptop", "prefix": key[:8], "owner": "alice"},
        )
    ]


def test_an_administrator_issues_a_token_for_someone_as_the_actor(approver, administrator):
    issue_token("alice", "--name", "gitlab", "--actor", "ada")

    assert [(kind, actor) for kind, _, actor, _ in token_entries()] == [("token.issued", "ada")]


def test_nobody_else_issues_a_token_for_someone(approver, outsider):
    with pytest.raises(
        CommandError, match=r"^Only administrators issue tokens for someone else\.$"
    ):
        issue_token("alice", "--actor", "mallory")

    assert ApiToken.objects.count() == 0
    assert LedgerEntry.objects.filter(kind__startswith="token.").count() == 0


def test_revoking_a_token_is_ledgered_and_it_stops_working(client, approver):
    key = issue_token("alice", "--name", "laptop")
    token = ApiToken.objects.get(user=approver)

    printed = revoke_token(key[:8], "--reason", "Laptop stolen")

    token.refresh_from_db()
    assert printed == f"Revoked laptop ({key[:8]}…) of alice."
    assert token.revoked_at is not None
    assert token_entries()[-1] == (
        "token.revoked",
        f"api_token:{token.pk}",
        "system",
        {"name": "laptop", "prefix": key[:8], "owner": "alice", "reason": "Laptop stolen"},
    )
    response = get_releases(client, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoking_needs_a_reason_and_changes_nothing_without_one(approver):
    key = issue_token("alice")

    with pytest.raises(CommandError, match="--reason"):
        revoke_token(key[:8])
    with pytest.raises(CommandError, match=r"^A reason is required to revoke a token\.$"):
        revoke_token(key[:8], "--reason", "  ")

    assert ApiToken.objects.get(user=approver).revoked_at is None
    assert [kind for kind, *_ in token_entries()] == ["token.issued"]


def test_revoking_an_unknown_or_revoked_prefix_fails(approver):
    key = issue_token("alice")
    revoke_token(key[:8], "--reason", "Rotated")

    with pytest.raises(CommandError, match=r"^No active token starts with 'so_nope'\.$"):
        revoke_token("so_nope", "--reason", "Rotated")
    with pytest.raises(CommandError, match=rf"^No active token starts with '{key[:8]}'\.$"):
        revoke_token(key[:8], "--reason", "Again")

    assert [kind for kind, *_ in token_entries()] == ["token.issued", "token.revoked"]


def test_a_prefix_two_active_tokens_share_revokes_neither(approver, second_approver):
    for user in (approver, second_approver):
        ApiToken.objects.create(
            user=user, name="twin", key_hash=user.username, key_prefix="so_twin1"
        )

    with pytest.raises(CommandError, match=r"^Several active tokens start with 'so_twin1'"):
        revoke_token("so_twin1", "--reason", "Rotated")

    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 0
    assert token_entries() == []


def test_only_the_owner_or_an_administrator_revokes_a_token(approver, outsider):
    token, _ = tokens.issue_token(user=approver, name="laptop")

    with pytest.raises(PermissionDenied) as refused:
        tokens.revoke_token(token=token, actor=outsider, reason="Mine now")

    assert refused.value.message == "Only administrators revoke someone else's token."
    token.refresh_from_db()
    assert token.revoked_at is None
    assert [kind for kind, *_ in token_entries()] == ["token.issued"]
    assert tokens.revoke_token(token=token, actor=approver, reason="Done with it") is True


def test_a_token_revoked_twice_is_ledgered_once(approver, administrator):
    token, _ = tokens.issue_token(user=approver, name="laptop")

    first = tokens.revoke_token(token=token, actor=administrator, reason="Rotated")
    second = tokens.revoke_token(token=token, actor=administrator, reason="Rotated again")

    assert (first, second) == (True, False)
    assert [kind for kind, *_ in token_entries()] == ["token.issued", "token.revoked"]


def test_the_admin_revoke_action_goes_through_the_service(client, approver, administrator):
    token, key = tokens.issue_token(user=approver, name="laptop")
    administrator.is_superuser = True
    administrator.save(update_fields=["is_superuser"])
    client.force_login(administrator)

    response = client.post(
        reverse("admin:governance_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_entries()[-1] == (
        "token.revoked",
        f"api_token:{token.pk}",
        "ada",
        {"name": "laptop", "prefix": key[:8], "owner": "alice", "reason": "Revoked in the admin"},
    )


# --- Deactivation revokes for good ---------------------------------------------------------------


@pytest.fixture
def scim(client, db):
    _, key = identity.issue_scim_token(name="okta", actor=None)
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def scim_active(client, scim: dict, user, active: bool):
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}],
    }
    return client.patch(
        f"/scim/v2/Users/{user.pk}", json.dumps(body), content_type="application/scim+json", **scim
    )


def test_scim_deactivation_revokes_tokens_for_good(client, approver, scim):
    token, key = tokens.issue_token(user=approver, name="laptop")
    assert get_releases(client, key).status_code == 200

    assert scim_active(client, scim, approver, False).status_code == 200
    assert scim_active(client, scim, approver, True).status_code == 200

    approver.refresh_from_db()
    token.refresh_from_db()
    assert approver.is_active is True
    assert token.revoked_at is not None
    assert get_releases(client, key).status_code == 401
    kinds = LedgerEntry.objects.order_by("seq").values_list("kind", "actor")
    assert list(kinds)[-4:] == [
        ("token.issued", "system"),
        ("identity.deactivated", "scim:okta"),
        ("token.revoked", "scim:okta"),
        ("identity.reactivated", "scim:okta"),
    ]
    assert token_entries()[-1][3] == {
        "name": "laptop",
        "prefix": key[:8],
        "owner": "alice",
        "reason": "Owner deactivated by the identity provider",
    }


def test_scim_delete_revokes_every_token_and_reactivation_brings_none_back(client, approver, scim):
    keys = [tokens.issue_token(user=approver, name=name)[1] for name in ("laptop", "ci")]

    assert client.delete(f"/scim/v2/Users/{approver.pk}", **scim).status_code == 204
    scim_active(client, scim, approver, True)

    assert [get_releases(client, key).status_code for key in keys] == [401, 401]
    assert ApiToken.objects.filter(user=approver, revoked_at__isnull=True).count() == 0
    reasons = [
        payload["reason"] for kind, _, _, payload in token_entries() if kind == "token.revoked"
    ]
    assert reasons == ["Owner deactivated: Deleted by the identity provider (SCIM DELETE)"] * 2


def test_a_token_revoked_before_deactivation_is_not_revoked_again(client, approver, scim):
    token, _ = tokens.issue_token(user=approver, name="laptop")
    tokens.revoke_token(token=token, actor=None, reason="Rotated")

    scim_active(client, scim, approver, False)

    assert [kind for kind, *_ in token_entries()] == ["token.issued", "token.revoked"]


def test_deactivating_again_finds_tokens_a_bypassed_path_left(approver):
    # Switched off outside the identity provider (e.g. by hand): the next deactivation still
    # revokes what is left, so a later reactivation cannot revive it.
    token, _ = tokens.issue_token(user=approver, name="laptop")
    User.objects.filter(pk=approver.pk).update(is_active=False)

    identity.deactivate_user(user=approver, source="scim:okta", reason="Left the company")

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert [kind for kind, *_ in token_entries()] == ["token.issued", "token.revoked"]


@pytest.fixture
def root(db):
    user = factories.UserFactory(username="root")
    factories.grant(user, Role.ADMINISTRATOR)
    User.objects.filter(pk=user.pk).update(is_superuser=True)
    return User.objects.get(pk=user.pk)


def person_form(person: User, **changes) -> dict:
    form = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "email": person.email,
        "time_zone": person.time_zone,
        "working_hours_start": person.working_hours_start,
        "working_hours_end": person.working_hours_end,
        "is_active": "on",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_deactivating_in_the_catalogue_revokes_tokens_for_good(client, approver, root):
    token, key = tokens.issue_token(user=approver, name="laptop")
    client.force_login(root)
    url = reverse("governance:catalogue_edit", args=["people", approver.pk])

    assert client.post(url, person_form(approver, is_active=None)).status_code == 302
    assert client.post(url, person_form(approver)).status_code == 302  # back on

    token.refresh_from_db()
    assert User.objects.get(pk=approver.pk).is_active is True
    assert token.revoked_at is not None
    assert get_releases(client, key).status_code == 401
    assert token_entries()[-1][3]["reason"] == "Deactivated in the catalogue"


def test_deactivating_in_the_django_admin_revokes_tokens_for_good(client, approver, root):
    token, _ = tokens.issue_token(user=approver, name="laptop")
    client.force_login(root)
    page = client.get(reverse("admin:governance_user_change", args=[approver.pk]))
    form = {
        name: value
        for name, value in page.context["adminform"].form.initial.items()
        if value is not None and not isinstance(value, list | tuple)
    }
    # An unticked checkbox is absent; the admin splits dates into two inputs.
    for name in ("is_active", "password", "last_login", "date_joined"):
        form.pop(name, None)
    form.update({"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})

    response = client.post(reverse("admin:governance_user_change", args=[approver.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    token.refresh_from_db()
    assert User.objects.get(pk=approver.pk).is_active is False
    assert token.revoked_at is not None
    assert token_entries()[-1][3]["reason"] == "Deactivated in the admin"
