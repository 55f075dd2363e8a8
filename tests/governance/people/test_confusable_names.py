"""Look-alike names: a pipeline's `triggered_by` and new userNames are matched the way a person
reads them (NFKC, case, invisible characters, Unicode TR39 confusables), never byte for byte."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals import services
from approvals.exceptions import SelfApprovalForbidden
from governance.exceptions import IdentityConflict
from governance.identity import services as identity
from governance.models import LedgerEntry, Role, User
from governance.people.names import normalise, skeletons
from tests import factories
from tests.governance.identity.test_scim import ScimClient, okta_user, scim_error_of

pytestmark = pytest.mark.django_db

CYRILLIC_A = "\u0430"
ZERO_WIDTH_SPACE = "\u200b"


@pytest.fixture
def scim(client, db):
    _, key = identity.issue_scim_token(name="okta", actor=None)
    return ScimClient(client, key)


def person(user_name: str) -> dict:
    return okta_user(
        user_name, emails=[{"primary": True, "value": "someone@example.com", "type": "work"}]
    )


def request_triggered_by(name, service, production, bot):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by=name), actor=bot
    )
    return release


@pytest.mark.parametrize(
    "name",
    [
        f"{CYRILLIC_A}lice",  # Cyrillic a
        f"alice{ZERO_WIDTH_SPACE}",  # zero-width space
        "\uff21\uff2c\uff29\uff23\uff25",  # fullwidth ALICE
        "aIice",  # capital i for the small L
        "a1ice",  # digit one for the small L
        "Alice@Example.com",  # her e-mail address
    ],
    ids=["cyrillic", "zero-width", "fullwidth", "capital-i", "digit-one", "e-mail"],
)
def test_a_look_alike_trigger_name_is_that_person_who_then_cannot_approve(
    client, org, service, production, pipeline_bot, approver, name
):
    release = request_triggered_by(name, service, production, pipeline_bot)

    assert release.triggered_by == approver
    with factories.nothing_changes(release), pytest.raises(SelfApprovalForbidden):
        factories.decide(release, approver)
    client.force_login(approver)
    assert release.version not in client.get(reverse("approvals:queue")).content.decode()
    page = client.get(reverse("approvals:release_detail", args=[release.pk])).content.decode()
    assert 'data-testid="trigger-alias"' in page


def test_an_unknown_trigger_name_is_kept_and_shown_as_unresolved(
    client, org, service, production, pipeline_bot, approver
):
    release = request_triggered_by("zed.nobody", service, production, pipeline_bot)

    assert release.triggered_by is None
    assert release.triggered_by_name == "zed.nobody"
    entry = LedgerEntry.objects.get(kind="approval.requested", subject=f"release:{release.pk}")
    assert (entry.payload["triggered_by"], entry.payload["triggered_by_resolved"]) == (
        "zed.nobody",
        None,
    )
    client.force_login(approver)
    page = client.get(reverse("approvals:release_detail", args=[release.pk])).content.decode()
    assert 'data-testid="unresolved-identity"' in page
    assert "zed.nobody" in page


def test_an_exact_name_wins_over_a_look_alike(org, service, production, pipeline_bot, approver):
    # A legacy account whose name looks like alice's (made before names were checked).
    User.objects.create(username="a1ice")
    release = request_triggered_by("alice", service, production, pipeline_bot)
    assert release.triggered_by == approver


@pytest.mark.parametrize(
    "user_name",
    [f"{CYRILLIC_A}lice", f"alice{ZERO_WIDTH_SPACE}", "ALICE", "a1ice"],
    ids=["cyrillic", "zero-width", "case", "digit-one"],
)
def test_scim_refuses_a_user_name_confusable_with_an_existing_one(scim, approver, user_name):
    users, entries = User.objects.count(), LedgerEntry.objects.count()

    response = scim.post("Users", person(user_name))

    error = scim_error_of(response, 409)
    assert error["scimType"] == "uniqueness"
    assert (User.objects.count(), LedgerEntry.objects.count()) == (users, entries)


def test_scim_refuses_renaming_someone_to_a_look_alike(scim, approver, second_approver):
    bob = scim.post("Users", person("robert")).json()
    response = scim.patch(
        f"Users/{bob['id']}", {"op": "replace", "path": "userName", "value": f"{CYRILLIC_A}lice"}
    )
    scim_error_of(response, 409)
    assert User.objects.filter(username="robert").exists()


def test_a_distinct_user_name_is_still_accepted(scim, approver):
    assert scim.post("Users", person("alicia")).status_code == 201


def test_the_django_admin_refuses_a_look_alike_username(client, org, approver):
    admin = factories.UserFactory(username="root")
    User.objects.filter(pk=admin.pk).update(is_staff=True, is_superuser=True)
    client.force_login(admin)
    users = User.objects.count()

    response = client.post(
        reverse("admin:governance_user_add"),
        {"username": f"{CYRILLIC_A}lice", "usable_password": "false"},
    )

    assert response.status_code == 200
    assert "looks like the existing" in response.content.decode()
    assert User.objects.count() == users


def test_the_identity_service_names_the_look_alike(approver):
    with pytest.raises(IdentityConflict, match="looks like the existing 'alice'"):
        identity.check_username_free(f"{CYRILLIC_A}lice")


def test_skeletons_follow_unicode_tr39():
    assert normalise(f"ALICE{ZERO_WIDTH_SPACE}") == "alice"
    assert skeletons(f"{CYRILLIC_A}lice") == ("alice", "alice")
    assert skeletons("aIice")[1] == "alice"
    assert skeletons("m") == ("rn", "rn")
    assert skeletons("bob") != skeletons("rob")


def test_service_accounts_keep_working_with_a_role(pipeline_bot):
    # Regression guard: the skeleton columns are kept by save() on every path, grants included.
    factories.grant(pipeline_bot, Role.RELEASE_MANAGER)
    assert User.objects.get(pk=pipeline_bot.pk).name_skeleton == "ci-bot"
