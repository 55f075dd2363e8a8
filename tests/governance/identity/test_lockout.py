"""Password guessing is bounded: a few wrong passwords lock the account and the address.

django-axes counts failed sign-ins per username and, separately, per client address; either
reaching the limit locks sign-in (the local form and the Django admin alike) for the cool-off.
Lockouts and unlocks are ledgered; administrators unlock with a reason. Failed bearer tokens are
throttled per address in the cache.
"""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db

HOME = "198.51.100.7"
ELSEWHERE = "203.0.113.20"
PASSWORD = "signoff-demo"  # every factory-built person's password


@pytest.fixture
def bob(db):
    return factories.UserFactory(username="bob")


def sign_in(client, username: str, password: str, address: str = HOME, url: str = ""):
    return client.post(
        url or reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def fail(client, username: str, times: int, address: str = HOME, url: str = "") -> list[int]:
    return [sign_in(client, username, "wrong", address, url).status_code for _ in range(times)]


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def ledger(kind: str) -> list[tuple[str, str, dict]]:
    entries = LedgerEntry.objects.filter(kind=kind).order_by("seq")
    return list(entries.values_list("subject", "actor", "payload"))


# --- Lockout -----------------------------------------------------------------------------------


def test_thirty_wrong_passwords_then_the_right_one_does_not_sign_in(client, bob):
    statuses = fail(client, "bob", 30)

    response = sign_in(client, "bob", PASSWORD)

    assert statuses == [200] * 4 + [429] * 26
    assert response.status_code == 429
    assert not signed_in(client)


def test_the_lockout_page_says_when_to_retry_and_whom_to_ask(client, bob):
    fail(client, "bob", 4)

    response = sign_in(client, "bob", "wrong")

    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert "<title>Sign-in locked · Signoff</title>" in page
    assert 'class="navbar' in page  # the app's layout, not a bare text answer
    locked_at = AccessAttempt.objects.get(username="bob").attempt_time
    until = (locked_at + timedelta(minutes=15)).strftime("%H:%M")
    assert f"Try again after {until} UTC" in page
    assert "ask a Signoff administrator to unlock it" in page
    assert response.context["until"] == locked_at + timedelta(minutes=15)


def test_a_locked_account_stays_locked_from_every_address(client, bob):
    for number in range(5):
        fail(client, "bob", 1, address=f"192.0.2.{number + 1}")

    response = sign_in(client, "bob", PASSWORD, address=ELSEWHERE)

    assert response.status_code == 429
    assert not signed_in(client)


def test_an_address_is_locked_after_failures_on_different_usernames(client, approver):
    statuses = [fail(client, f"guess{number}", 1)[0] for number in range(5)]

    from_home = sign_in(client, "alice", PASSWORD)
    assert (statuses, from_home.status_code, signed_in(client)) == ([200] * 4 + [429], 429, False)

    from_elsewhere = sign_in(client, "alice", PASSWORD, address=ELSEWHERE)
    assert (from_elsewhere.status_code, from_elsewhere["Location"]) == (302, "/")
    assert signed_in(client)


def test_a_successful_sign_in_clears_the_failures(client, bob):
    fail(client, "bob", 4)
    assert sign_in(client, "bob", PASSWORD).status_code == 302
    client.logout()

    assert fail(client, "bob", 4) == [200] * 4
    assert sign_in(client, "bob", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, bob):
    fail(client, "bob", 5)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))

    response = sign_in(client, "bob", PASSWORD)

    assert response.status_code == 302
    assert signed_in(client)


def test_without_a_cool_off_only_an_administrator_ends_the_lockout(client, bob, settings):
    settings.AXES_COOLOFF_TIME = None
    fail(client, "bob", 5)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(days=30))

    response = sign_in(client, "bob", PASSWORD)

    assert response.status_code == 429
    assert "Retry-After" not in response
    assert "The lock stays until an administrator lifts it." in response.content.decode()


def test_the_django_admin_sign_in_is_locked_too(client):
    root = factories.UserFactory(username="root", is_staff=True, is_superuser=True)
    admin_login = reverse("admin:login")

    statuses = fail(client, "root", 5, url=admin_login)
    response = sign_in(client, "root", PASSWORD, url=admin_login)

    assert statuses == [200] * 4 + [429]
    assert response.status_code == 429
    assert not signed_in(client)
    assert ledger("auth.locked_out") == [
        (f"user:{root.pk}", "system", {"username": "root", "ip": HOME, "failures": 5})
    ]


def test_a_lockout_is_ledgered_once_however_often_it_is_hit(client, bob):
    fail(client, "bob", 12)
    sign_in(client, "bob", PASSWORD)

    assert ledger("auth.locked_out") == [
        (f"user:{bob.pk}", "system", {"username": "bob", "ip": HOME, "failures": 5})
    ]


def test_a_lockout_on_an_unknown_username_is_ledgered_by_name(client, db):
    fail(client, "nobody", 5)

    assert ledger("auth.locked_out") == [
        ("username:nobody", "system", {"username": "nobody", "ip": HOME, "failures": 5})
    ]


def test_failures_below_the_limit_are_not_ledgered(client, bob):
    fail(client, "bob", 4)

    assert LedgerEntry.objects.count() == 0


def test_proxy_headers_are_ignored_unless_a_proxy_is_trusted(client, bob):
    for number in range(5):
        client.post(
            reverse("login"),
            {"username": f"guess{number}", "password": "wrong"},
            REMOTE_ADDR=HOME,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{number}",
        )

    assert sign_in(client, "bob", PASSWORD).status_code == 429  # HOME itself is locked


def test_behind_one_trusted_proxy_the_forwarded_client_address_counts(client, bob, settings):
    settings.SIGNOFF_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"
    for _ in range(5):
        client.post(
            reverse("login"),
            {"username": "guess", "password": "wrong"},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {HOME}",  # the client may forge the left part
        )

    other_client = client.post(
        reverse("login"),
        {"username": "bob", "password": PASSWORD},
        REMOTE_ADDR=proxy,
        HTTP_X_FORWARDED_FOR=ELSEWHERE,
    )

    assert other_client.status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME}


# --- Administrators unlock -----------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["anonymous", "outsider", "approver", "auditor"])
def test_only_administrators_see_the_lockouts(client, org, request, persona):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))

    response = client.get(reverse("governance:lockout_list"))

    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"] == "/accounts/login/?next=/governance/lockouts/"
    else:
        assert response.status_code == 403


def test_the_administrator_sees_each_locked_account_and_address(client, bob, administrator):
    fail(client, "bob", 3)
    fail(client, "bob", 2, address=ELSEWHERE)
    fail(client, "ghost", 3, address=ELSEWHERE)
    client.force_login(administrator)

    response = client.get(reverse("governance:lockout_list"))

    assert response.status_code == 200
    rows = [
        (row.kind, row.value, row.failures, row.related) for row in response.context["lockouts"]
    ]
    assert rows == [
        ("username", "bob", 5, [HOME, ELSEWHERE]),
        ("address", ELSEWHERE, 5, ["bob", "ghost"]),
    ]
    since = AccessAttempt.objects.get(username="ghost").attempt_time
    assert response.context["lockouts"][1].since == since
    page = response.content.decode()
    assert "Sign-in lockouts" in page and 'name="reason"' in page


def test_the_lockout_list_costs_the_same_queries_for_one_lockout_or_many(client, administrator):
    url = reverse("governance:lockout_list")
    fail(client, "bob", 5)
    client.force_login(administrator)
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(url).context["lockouts"]) == 2
    for number in range(6):
        fail(client, f"user{number}", 5, address=f"192.0.2.{number}")

    with CaptureQueriesContext(connection) as many:
        assert len(client.get(url).context["lockouts"]) == 14

    assert len(many.captured_queries) == len(one.captured_queries)


def test_the_administration_menu_links_the_lockouts(client, administrator):
    client.force_login(administrator)

    page = client.get(reverse("governance:role_list")).content.decode()

    assert f'href="{reverse("governance:lockout_list")}"' in page


def test_an_administrator_unlocks_an_account_with_a_reason(client, bob, administrator):
    fail(client, "bob", 5)
    client.force_login(administrator)

    response = client.post(
        reverse("governance:lockout_unlock"),
        {"username": "bob", "reason": "Bob called the service desk"},
    )

    assert (response.status_code, response["Location"]) == (302, "/governance/lockouts/")
    assert AccessAttempt.objects.count() == 0
    assert ledger("auth.unlocked") == [
        (
            f"user:{bob.pk}",
            "ada",
            {"username": "bob", "ip": None, "reason": "Bob called the service desk", "failures": 5},
        )
    ]
    client.logout()
    assert sign_in(client, "bob", PASSWORD).status_code == 302


def test_unlocking_from_the_shell_is_an_administrators_act_in_the_ledger(
    client, bob, administrator
):
    fail(client, "bob", 5)

    out = io.StringIO()
    call_command(
        "axes_reset_username", "bob", by="ada", reason="Bob called the service desk", stdout=out
    )

    assert "5 failed sign-in(s) cleared" in out.getvalue()
    assert AccessAttempt.objects.count() == 0
    assert ledger("auth.unlocked") == [
        (
            f"user:{bob.pk}",
            "ada",
            {"username": "bob", "ip": None, "reason": "Bob called the service desk", "failures": 5},
        )
    ]


@pytest.mark.parametrize(
    ("command", "args", "options", "refusal"),
    [
        ("axes_reset", [], {}, "records every unlock"),
        ("axes_reset_username", ["bob"], {"by": "bob", "reason": "Me"}, "Only administrators"),
        ("axes_reset_username", ["bob"], {"by": "nobody", "reason": "x"}, "No person named"),
        ("axes_reset_username", ["bob"], {"by": "ada", "reason": " "}, "A reason is required"),
        ("axes_reset_ip", [HOME], {"by": "bob", "reason": "Me"}, "Only administrators"),
        ("axes_reset_ip_username", [HOME, "bob"], {"by": "bob", "reason": "x"}, "administrators"),
    ],
)
def test_shell_unlocks_without_an_administrator_and_a_reason_change_nothing(
    client, bob, administrator, command, args, options, refusal
):
    fail(client, "bob", 5)
    before = (AccessAttempt.objects.count(), LedgerEntry.objects.count())

    with pytest.raises(CommandError, match=refusal):
        call_command(command, *args, **options)

    assert (AccessAttempt.objects.count(), LedgerEntry.objects.count()) == before


def test_without_by_and_reason_the_shell_unlock_does_not_run(client, bob):
    fail(client, "bob", 5)

    with pytest.raises(CommandError, match="--by, --reason"):
        call_command("axes_reset_username", "bob")

    assert AccessAttempt.objects.count() == 1


def test_an_administrator_unlocks_an_address(client, approver, administrator):
    for number in range(5):
        fail(client, f"guess{number}", 1)
    client.force_login(administrator)

    client.post(reverse("governance:lockout_unlock"), {"ip": HOME, "reason": "Office NAT"})

    assert ledger("auth.unlocked") == [
        (
            f"address:{HOME}",
            "ada",
            {"username": None, "ip": HOME, "reason": "Office NAT", "failures": 5},
        )
    ]
    client.logout()
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_unlocking_without_a_reason_changes_nothing(client, bob, administrator):
    fail(client, "bob", 5)
    client.force_login(administrator)
    before = LedgerEntry.objects.count()

    response = client.post(reverse("governance:lockout_unlock"), {"username": "bob", "reason": " "})

    assert response.status_code == 302
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == ["A reason is required to unlock."]
    assert AccessAttempt.objects.get(username="bob").failures_since_start == 5
    assert LedgerEntry.objects.count() == before


def test_unlocking_what_is_not_locked_changes_nothing(client, administrator):
    client.force_login(administrator)

    response = client.post(
        reverse("governance:lockout_unlock"), {"username": "carol", "reason": "Just in case"}
    )

    messages = [str(message) for message in get_messages(response.wsgi_request)]
    assert messages == ["Nothing to unlock: no failed sign-ins are recorded for that."]
    assert ledger("auth.unlocked") == []


@pytest.mark.parametrize("persona", ["anonymous", "outsider", "approver", "auditor"])
def test_nobody_else_can_unlock(client, org, request, persona):
    fail(client, "bob", 5)
    before = LedgerEntry.objects.count()
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))

    response = client.post(
        reverse("governance:lockout_unlock"), {"username": "bob", "reason": "Let me in"}
    )

    assert response.status_code == (302 if persona == "anonymous" else 403)
    assert AccessAttempt.objects.get(username="bob").failures_since_start == 5
    assert LedgerEntry.objects.count() == before
    client.logout()
    assert sign_in(client, "bob", PASSWORD).status_code == 429


# --- Bearer tokens -------------------------------------------------------------------------------

GATEWAY = "203.0.113.9"


def releases(api_client, address: str = GATEWAY, token: str | None = None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return api_client.get("/api/v1/releases/", REMOTE_ADDR=address, **extra)


def test_failed_bearer_tokens_from_one_address_are_throttled(api, approver):
    stranger = api()
    statuses = [releases(stranger, token=f"so_guess{n}").status_code for n in range(20)]

    response = releases(api(approver))  # even the right token waits for the window

    assert statuses == [401] * 20
    assert response.status_code == 429
    assert response["Retry-After"] == "300"
    assert response.json() == {
        "error": {
            "code": "throttled",
            "message": "Too many failed token attempts from your address. "
            "Expected available in 300 seconds.",
            "fields": {},
        }
    }


def test_the_token_throttle_is_per_address(api, approver):
    stranger = api()
    for n in range(20):
        releases(stranger, token=f"so_guess{n}")

    assert releases(api(approver), address=ELSEWHERE).status_code == 200


def test_right_tokens_do_not_count_towards_the_throttle(api, approver):
    client = api(approver)

    statuses = {releases(client).status_code for _ in range(25)}

    assert statuses == {200}


def test_the_token_throttle_lifts_when_the_window_passes(api, approver, settings):
    settings.API_TOKEN_FAILURE_WINDOW_SECONDS = 1
    stranger = api()
    for n in range(20):
        releases(stranger, token=f"so_guess{n}")
    assert releases(api(approver)).status_code == 429

    time.sleep(1.2)

    assert releases(api(approver)).status_code == 200


def test_the_api_keeps_answering_when_the_throttles_cache_is_down(api, approver, settings):
    # Redis unreachable (a closed local port): tokens are still checked, nothing is throttled.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    started = time.monotonic()

    assert releases(api(approver)).status_code == 200
    assert releases(api(), token="so_wrong").status_code == 401

    assert time.monotonic() - started < 5
