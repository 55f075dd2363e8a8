"""SCIM 2.0 at /scim/v2/, driven by the request sequences Okta and Microsoft Entra ID document.

Okta: "SCIM 2.0 protocol reference" (developer.okta.com); Entra ID: "Tutorial: Develop and plan
provisioning for a SCIM endpoint" (learn.microsoft.com). Bodies below are theirs, ids aside.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from approvals.exceptions import NotEligible
from governance.authority.selectors import has_stage_authority
from governance.authority.services import grant_role
from governance.exceptions import PermissionDenied
from governance.identity import services as identity
from governance.models import (
    IdentityGroup,
    LedgerEntry,
    MappedRoleGrant,
    Role,
    RoleAssignment,
    ScimToken,
    User,
)
from tests import factories

SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


class ScimClient:
    """Django's test client speaking SCIM with a bearer token, as an identity provider does."""

    def __init__(self, client, key: str | None) -> None:
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}

    def get(self, path: str, **params):
        return self.client.get(f"/scim/v2/{path}", params, **self.headers)

    def send(self, method: str, path: str, body: object | str | bytes | None = None):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        call = getattr(self.client, method)
        return call(f"/scim/v2/{path}", data, content_type=SCIM_JSON, **self.headers)

    def post(self, path: str, body):
        return self.send("post", path, body)

    def put(self, path: str, body):
        return self.send("put", path, body)

    def patch(self, path: str, *operations):
        return self.send("patch", path, {"schemas": [PATCH_SCHEMA], "Operations": list(operations)})

    def delete(self, path: str):
        return self.client.delete(f"/scim/v2/{path}", **self.headers)


@pytest.fixture
def scim(client, db):
    _, key = identity.issue_scim_token(name="okta", actor=None)
    return ScimClient(client, key)


def okta_user(user_name: str = "jane.doe@example.com", **overrides) -> dict:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Jane Doe",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    body.update(overrides)
    return body


def entra_user(user_name: str = "Test_User_ab6490ee@testuser.com") -> dict:
    return {
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops"},
    }


def json_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == SCIM_JSON
    return response.json()


def scim_error_of(response, status: int) -> dict:
    body = json_of(response, status)
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body["detail"]
    return body


def ledger_kinds() -> list[str]:
    return list(LedgerEntry.objects.order_by("seq").values_list("kind", flat=True))


# --- Okta: the user lifecycle --------------------------------------------------------------------


def test_okta_lookup_of_an_unknown_user_returns_an_empty_list_response(scim):
    body = json_of(
        scim.get("Users", filter='userName eq "jane.doe@example.com"', startIndex=1, count=100),
        200,
    )
    assert body == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }


def test_okta_creates_a_user_and_gets_201_with_id_and_no_password(scim):
    response = scim.post("Users", okta_user())

    body = json_of(response, 201)
    user = User.objects.get(username="jane.doe@example.com")
    assert body["id"] == str(user.pk)
    assert "password" not in body
    assert b"1mz050nq" not in response.content
    assert body["userName"] == "jane.doe@example.com"
    assert body["name"]["givenName"] == "Jane"
    assert body["name"]["familyName"] == "Doe"
    assert body["emails"] == [{"value": "jane.doe@example.com", "primary": True, "type": "work"}]
    assert body["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert body["active"] is True
    assert response["Location"].endswith(f"/scim/v2/Users/{user.pk}")
    assert (user.first_name, user.last_name, user.email) == ("Jane", "Doe", "jane.doe@example.com")
    assert user.scim_external_id == "00ujl29u0le5T6Aj10h7"
    assert user.check_password("1mz050nq")
    entry = LedgerEntry.objects.get(kind="identity.provisioned")
    assert (entry.subject, entry.actor) == (f"user:{user.pk}", "scim:okta")


def test_okta_finds_and_reads_the_created_user(scim):
    user_id = scim.post("Users", okta_user()).json()["id"]

    listed = json_of(
        scim.get("Users", filter='userName eq "jane.doe@example.com"', startIndex=1, count=100),
        200,
    )
    single = json_of(scim.get(f"Users/{user_id}"), 200)

    assert listed["totalResults"] == 1
    assert listed["itemsPerPage"] == 1
    assert [resource["id"] for resource in listed["Resources"]] == [user_id]
    assert single["id"] == user_id
    assert single["schemas"] == [USER_SCHEMA]
    assert single["meta"]["resourceType"] == "User"


def test_okta_deactivation_patch_switches_the_user_off_and_is_ledgered(scim):
    user_id = scim.post("Users", okta_user()).json()["id"]

    body = json_of(
        scim.patch(f"Users/{user_id}", {"op": "replace", "value": {"active": False}}), 200
    )

    assert body["active"] is False
    user = User.objects.get(pk=user_id)
    assert user.is_active is False
    entry = LedgerEntry.objects.get(kind="identity.deactivated")
    assert entry.subject == f"user:{user_id}"
    assert entry.actor == "scim:okta"


def test_okta_put_replaces_the_user(scim):
    user_id = scim.post("Users", okta_user()).json()["id"]
    replacement = okta_user(
        "jane.smith@example.com",
        id=user_id,
        name={"givenName": "Jane", "familyName": "Smith"},
        emails=[{"primary": True, "value": "jane.smith@example.com", "type": "work"}],
    )
    del replacement["externalId"]

    body = json_of(scim.put(f"Users/{user_id}", replacement), 200)

    user = User.objects.get(pk=user_id)
    assert body["userName"] == "jane.smith@example.com"
    assert (user.username, user.last_name, user.email) == (
        "jane.smith@example.com",
        "Smith",
        "jane.smith@example.com",
    )
    assert user.scim_external_id is None
    assert "identity.renamed" in ledger_kinds()


def test_delete_deactivates_and_keeps_the_row(scim):
    user_id = scim.post("Users", okta_user()).json()["id"]

    response = scim.delete(f"Users/{user_id}")

    assert response.status_code == 204
    assert User.objects.get(pk=user_id).is_active is False
    assert ledger_kinds().count("identity.deactivated") == 1
    assert json_of(scim.get(f"Users/{user_id}"), 200)["active"] is False


# --- Entra ID: its spellings ------------------------------------------------------------------


def test_entra_filter_matches_user_name_in_another_case(scim):
    user_id = json_of(scim.post("Users", entra_user()), 201)["id"]

    for query in (
        'userName eq "test_user_ab6490ee@testuser.com"',
        'UserName eq "TEST_USER_AB6490EE@TESTUSER.COM"',
    ):
        body = json_of(scim.get("Users", filter=query), 200)
        assert [resource["id"] for resource in body["Resources"]] == [user_id], query


def test_entra_filter_by_external_id(scim):
    user_id = json_of(scim.post("Users", entra_user()), 201)["id"]

    body = json_of(
        scim.get("Users", filter='externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'), 200
    )

    assert [resource["id"] for resource in body["Resources"]] == [user_id]


def test_entra_replace_active_with_the_string_false(scim):
    user_id = scim.post("Users", entra_user()).json()["id"]

    body = json_of(
        scim.patch(f"Users/{user_id}", {"op": "Replace", "path": "active", "value": "False"}), 200
    )

    assert body["active"] is False
    assert User.objects.get(pk=user_id).is_active is False
    assert ledger_kinds().count("identity.deactivated") == 1


def test_entra_multi_operation_patch_with_filtered_and_extension_paths(scim):
    user_id = scim.post("Users", entra_user()).json()["id"]

    response = scim.patch(
        f"Users/{user_id}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "updated@testuser.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        {"op": "Add", "path": "externalId", "value": "new-external-id"},
        {
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "value": "Finance",
        },
        {"op": "Add", "value": {"name.givenName": "updatedGivenName", "title": "Engineer"}},
    )

    body = json_of(response, 200)
    user = User.objects.get(pk=user_id)
    assert (user.email, user.first_name, user.last_name, user.scim_external_id) == (
        "updated@testuser.com",
        "updatedGivenName",
        "updatedFamilyName",
        "new-external-id",
    )
    assert body["emails"][0]["value"] == "updated@testuser.com"


def test_entra_reactivation_with_the_string_true_is_ledgered(scim):
    user_id = scim.post("Users", entra_user()).json()["id"]
    scim.patch(f"Users/{user_id}", {"op": "Replace", "path": "active", "value": "False"})

    scim.patch(f"Users/{user_id}", {"op": "Replace", "path": "active", "value": "True"})

    assert User.objects.get(pk=user_id).is_active is True
    assert ledger_kinds()[-1] == "identity.reactivated"


# --- Errors ------------------------------------------------------------------------------------


def test_duplicate_user_name_in_any_case_is_409_uniqueness(scim):
    scim.post("Users", okta_user())
    count = User.objects.count()

    body = scim_error_of(scim.post("Users", okta_user("JANE.DOE@example.com")), 409)

    assert body["scimType"] == "uniqueness"
    assert User.objects.count() == count


def test_renaming_onto_a_taken_user_name_is_409_uniqueness(scim):
    scim.post("Users", okta_user())
    other_id = scim.post("Users", okta_user("john@example.com", externalId="x")).json()["id"]

    response = scim.patch(
        f"Users/{other_id}", {"op": "replace", "path": "userName", "value": "Jane.Doe@example.com"}
    )

    assert scim_error_of(response, 409)["scimType"] == "uniqueness"
    assert User.objects.get(pk=other_id).username == "john@example.com"


def test_unknown_id_is_a_scim_404(scim):
    scim_error_of(scim.get("Users/999999"), 404)
    scim_error_of(scim.patch("Groups/999999", {"op": "add", "path": "members", "value": []}), 404)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dXNlcjpwYXNz", "Bearer "])
def test_missing_or_bad_token_is_401_and_changes_nothing(client, db, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    count = User.objects.count()

    response = client.post(
        "/scim/v2/Users", json.dumps(okta_user()), content_type=SCIM_JSON, **headers
    )

    scim_error_of(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert User.objects.count() == count


def test_a_signed_in_session_is_not_enough(client, admin_user):
    client.force_login(admin_user)

    scim_error_of(client.get("/scim/v2/Users"), 401)


def test_revoked_token_is_refused(client, db):
    token, key = identity.issue_scim_token(name="entra", actor=None)
    ScimToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)

    scim_error_of(ScimClient(client, key).get("Users"), 401)


def test_malformed_json_is_400_in_the_error_schema(scim):
    scim_error_of(scim.send("post", "Users", '{"userName": '), 400)


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "x" * 10_000, "../../etc/passwd", "Europe/../UTC", 42, ["UTC"]]
)
def test_an_unknown_time_zone_is_400_invalid_value_and_creates_nobody(scim, zone):
    before = ledger_kinds()

    body = scim_error_of(scim.post("Users", okta_user(timezone=zone)), 400)

    assert body["scimType"] == "invalidValue"
    assert "Unknown time zone" in body["detail"]
    assert len(body["detail"]) < 200  # a hostile value is not echoed back whole
    assert not User.objects.filter(username="jane.doe@example.com").exists()
    assert ledger_kinds() == before


def test_a_known_time_zone_is_kept(scim):
    scim_user = json_of(scim.post("Users", okta_user(timezone="America/Chicago")), 201)

    assert scim_user["timezone"] == "America/Chicago"
    assert User.objects.get(username="jane.doe@example.com").time_zone == "America/Chicago"


def test_unknown_patch_op_is_400(scim):
    user_id = scim.post("Users", okta_user()).json()["id"]

    body = scim_error_of(scim.patch(f"Users/{user_id}", {"op": "merge", "value": {}}), 400)

    assert body["scimType"] == "invalidSyntax"


def test_service_accounts_and_no_anonymous_user_are_listed(scim, pipeline_bot):
    factories.UserFactory(username="alice")

    body = json_of(scim.get("Users"), 200)

    assert [resource["userName"] for resource in body["Resources"]] == ["alice"]
    scim_error_of(scim.get(f"Users/{pipeline_bot.pk}"), 404)


# --- Groups: Okta and Entra sequences ----------------------------------------------------------


def test_okta_group_push_and_membership_patches(scim):
    jane = scim.post("Users", okta_user()).json()["id"]
    john = scim.post("Users", okta_user("john@example.com", externalId="x")).json()["id"]

    created = json_of(
        scim.post("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Approvers", "members": []}),
        201,
    )
    group_id = created["id"]
    assert created["displayName"] == "Approvers"
    assert created["members"] == []

    scim.patch(f"Groups/{group_id}", {"op": "add", "path": "members", "value": [{"value": jane}]})
    scim.patch(f"Groups/{group_id}", {"op": "add", "path": "members", "value": [{"value": john}]})
    assert _member_ids(scim, group_id) == {jane, john}

    scim.patch(f"Groups/{group_id}", {"op": "remove", "path": f'members[value eq "{jane}"]'})
    assert _member_ids(scim, group_id) == {john}

    scim.patch(
        f"Groups/{group_id}", {"op": "replace", "path": "members", "value": [{"value": jane}]}
    )
    assert _member_ids(scim, group_id) == {jane}

    scim.patch(
        f"Groups/{group_id}", {"op": "replace", "value": {"id": group_id, "displayName": "CAB"}}
    )
    assert IdentityGroup.objects.get(pk=group_id).name == "CAB"
    found = json_of(scim.get("Groups", filter='displayName eq "CAB"'), 200)
    assert [resource["id"] for resource in found["Resources"]] == [group_id]


def test_entra_group_membership_with_capitalised_ops(scim):
    user_id = scim.post("Users", entra_user()).json()["id"]
    group_id = scim.post("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Ops"}).json()["id"]

    json_of(
        scim.patch(
            f"Groups/{group_id}", {"op": "Add", "path": "members", "value": [{"value": user_id}]}
        ),
        200,
    )
    assert _member_ids(scim, group_id) == {user_id}
    without = json_of(scim.get(f"Groups/{group_id}", excludedAttributes="members"), 200)
    assert "members" not in without

    scim.patch(
        f"Groups/{group_id}", {"op": "Remove", "path": "members", "value": [{"value": user_id}]}
    )
    assert _member_ids(scim, group_id) == set()


def test_adding_an_unknown_member_is_400_and_changes_nothing(scim):
    group_id = scim.post("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Ops"}).json()["id"]
    kinds = ledger_kinds()

    response = scim.patch(
        f"Groups/{group_id}", {"op": "add", "path": "members", "value": [{"value": "424242"}]}
    )

    scim_error_of(response, 400)
    assert ledger_kinds() == kinds


def _member_ids(scim: ScimClient, group_id: str) -> set[str]:
    return {member["value"] for member in scim.get(f"Groups/{group_id}").json()["members"]}


# --- Group → role mappings -------------------------------------------------------------------


@pytest.fixture
def approvers_group(scim, service):
    group_id = scim.post(
        "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Payments approvers"}
    ).json()["id"]
    group = IdentityGroup.objects.get(pk=group_id)
    identity.add_role_mapping(
        group=group, role=Role.APPROVER, service=service, reason="Payments approvers", actor=None
    )
    return group


def test_joining_a_mapped_group_grants_the_role_and_leaving_revokes_it(
    scim, approvers_group, service
):
    user_id = scim.post("Users", okta_user()).json()["id"]

    scim.patch(
        f"Groups/{approvers_group.pk}",
        {"op": "add", "path": "members", "value": [{"value": user_id}]},
    )

    user = User.objects.get(pk=user_id)
    assert user.has_perm("governance.approve_release", service)
    granted = LedgerEntry.objects.get(kind="role.granted", subject=f"user:{user_id}")
    assert granted.actor == "system"
    assert "Payments approvers" in granted.payload["reason"]

    scim.patch(
        f"Groups/{approvers_group.pk}", {"op": "remove", "path": f'members[value eq "{user_id}"]'}
    )

    user = User.objects.get(pk=user_id)
    assert not user.has_perm("governance.approve_release", service)
    assert not RoleAssignment.objects.filter(user=user).exists()
    revoked = LedgerEntry.objects.get(kind="role.revoked", subject=f"user:{user_id}")
    assert "Payments approvers" in revoked.payload["reason"]


def test_leaving_a_mapped_group_leaves_a_hand_granted_role_alone(scim, approvers_group, service):
    user_id = scim.post("Users", okta_user()).json()["id"]
    user = User.objects.get(pk=user_id)
    factories.grant(user, Role.APPROVER, service)  # By an administrator, before any group sync.
    group = f"Groups/{approvers_group.pk}"

    scim.patch(group, {"op": "add", "path": "members", "value": [{"value": user_id}]})
    scim.patch(group, {"op": "remove", "path": "members", "value": [{"value": user_id}]})

    user = User.objects.get(pk=user_id)
    assert user.has_perm("governance.approve_release", service)
    assert RoleAssignment.objects.filter(user=user, role=Role.APPROVER, service=service).exists()
    assert not LedgerEntry.objects.filter(kind="role.revoked").exists()


def test_a_role_two_groups_carry_stays_until_the_last_one_is_left(scim, approvers_group, service):
    user_id = scim.post("Users", okta_user()).json()["id"]
    other_id = scim.post(
        "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Release leads"}
    ).json()["id"]
    identity.add_role_mapping(
        group=IdentityGroup.objects.get(pk=other_id),
        role=Role.APPROVER,
        service=service,
        reason="Leads approve too",
        actor=None,
    )
    add = {"op": "add", "path": "members", "value": [{"value": user_id}]}
    scim.patch(f"Groups/{approvers_group.pk}", add)
    scim.patch(f"Groups/{other_id}", add)

    scim.patch(
        f"Groups/{approvers_group.pk}", {"op": "remove", "path": f'members[value eq "{user_id}"]'}
    )
    assert User.objects.get(pk=user_id).has_perm("governance.approve_release", service)

    scim.patch(f"Groups/{other_id}", {"op": "remove", "path": f'members[value eq "{user_id}"]'})
    assert not User.objects.get(pk=user_id).has_perm("governance.approve_release", service)


def test_deleting_a_mapped_group_revokes_its_roles(scim, approvers_group, service):
    user_id = scim.post("Users", okta_user()).json()["id"]
    scim.patch(
        f"Groups/{approvers_group.pk}",
        {"op": "add", "path": "members", "value": [{"value": user_id}]},
    )

    assert scim.delete(f"Groups/{approvers_group.pk}").status_code == 204

    assert not IdentityGroup.objects.filter(pk=approvers_group.pk).exists()
    assert not MappedRoleGrant.objects.exists()
    assert not User.objects.get(pk=user_id).has_perm("governance.approve_release", service)
    assert "identity.group_deleted" in ledger_kinds()


def test_a_new_mapping_grants_current_members_and_removing_it_revokes(scim, service):
    user_id = scim.post("Users", okta_user()).json()["id"]
    group_id = scim.post(
        "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "CAB", "members": [{"value": user_id}]}
    ).json()["id"]

    mapping = identity.add_role_mapping(
        group=IdentityGroup.objects.get(pk=group_id),
        role=Role.CAB_MEMBER,
        service=None,
        reason="The CAB",
        actor=None,
    )
    assert User.objects.get(pk=user_id).has_perm("governance.cab_approve")

    identity.remove_role_mapping(mapping=mapping, actor=None)
    assert not User.objects.get(pk=user_id).has_perm("governance.cab_approve")


def test_an_administrator_cannot_map_a_group_they_belong_to(scim, service):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    group = IdentityGroup.objects.create(name="Approvers")
    group.members.add(admin)
    kinds = ledger_kinds()

    with pytest.raises(PermissionDenied):
        identity.add_role_mapping(
            group=group, role=Role.APPROVER, service=service, reason="Mine", actor=admin
        )
    with pytest.raises(PermissionDenied):
        identity.add_role_mapping(
            group=group,
            role=Role.APPROVER,
            service=service,
            reason="Not an admin",
            actor=factories.UserFactory(username="mallory"),
        )

    assert not group.role_mappings.exists()
    assert ledger_kinds() == kinds


# --- Deactivation stops approvals at once ------------------------------------------------------


def test_scim_deactivation_stops_the_approver_deciding(scim, production_release, approver, service):
    assert has_stage_authority(approver, service, "service_approvers")

    response = scim.patch(
        f"Users/{approver.scim_id}", {"op": "replace", "value": {"active": False}}
    )

    json_of(response, 200)
    approver.refresh_from_db()
    assert not has_stage_authority(approver, service, "service_approvers")
    with factories.nothing_changes(production_release), pytest.raises(NotEligible) as refused:
        factories.decide(production_release, approver)
    assert refused.value.message == "You are not an eligible approver for Service approval."


def test_issue_scim_token_prints_a_working_token_once(client, db):
    out = io.StringIO()

    call_command("issue_scim_token", "--name", "entra", stdout=out)

    key = out.getvalue().strip()
    token = ScimToken.objects.get()
    assert token.name == "entra"
    assert token.key_hash == ScimToken.hash_key(key)
    assert key.startswith(token.key_prefix)
    assert key not in json.dumps(list(ScimToken.objects.values()), default=str)
    json_of(ScimClient(client, key).get("Users"), 200)


def test_a_hand_grant_of_a_role_held_through_a_group_survives_leaving_the_group(
    scim, approvers_group, service
):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    user_id = scim.post("Users", okta_user()).json()["id"]
    group = f"Groups/{approvers_group.pk}"
    scim.patch(group, {"op": "add", "path": "members", "value": [{"value": user_id}]})
    user = User.objects.get(pk=user_id)
    grant_role(user=user, role=Role.APPROVER, service=service, reason="Keeps it", actor=admin)

    scim.patch(group, {"op": "remove", "path": "members", "value": [{"value": user_id}]})

    user = User.objects.get(pk=user_id)
    assert user.has_perm("governance.approve_release", service)
    assert (
        RoleAssignment.objects.get(user=user, role=Role.APPROVER, service=service).granted_by
        == admin
    )


def test_an_administrator_issues_a_token_in_the_ui_that_works_and_revokes_it(client, db):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    client.force_login(admin)
    page = client.post(reverse("governance:scim_tokens"), {"name": "okta-production"})
    key = page.context["new_key"]
    assert key and key in page.content.decode()
    assert ScimToken.objects.get(name="okta-production").key_hash != key
    assert client.get(reverse("governance:scim_tokens")).context["new_key"] == ""
    client.logout()
    assert client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    client.force_login(admin)
    token = ScimToken.objects.get(name="okta-production")
    client.post(reverse("governance:scim_tokens"), {"revoke": token.pk})
    client.logout()
    assert client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    assert LedgerEntry.objects.filter(kind="identity.scim_token_revoked").exists()


@pytest.mark.parametrize("persona", ["approver", "auditor"])
def test_only_administrators_see_scim_tokens(client, org, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("governance:scim_tokens")).status_code == 403


# --- Bad input: a clear SCIM 400 or 404, nothing written (invariant 7) -------------------------


def scim_state() -> tuple:
    """Every row a SCIM write can touch, read fresh, to prove a refusal wrote nothing."""
    users = list(
        User.objects.order_by("pk").values_list(
            "pk", "username", "first_name", "last_name", "email", "scim_external_id", "is_active"
        )
    )
    groups = list(
        IdentityGroup.objects.order_by("pk").values_list("pk", "name", "scim_external_id")
    )
    through = IdentityGroup.members.through.objects.order_by("pk")
    memberships = list(through.values_list("identitygroup_id", "user_id"))
    return users, groups, memberships, LedgerEntry.objects.count()


@pytest.fixture
def jane_id(scim) -> str:
    return json_of(scim.post("Users", okta_user()), 201)["id"]


@pytest.fixture
def group_id(scim) -> str:
    created = scim.post("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Ops"})
    return json_of(created, 201)["id"]


USER_WRITES = {
    "post": lambda scim, user_id, body: scim.post("Users", okta_user(**body)),
    "put": lambda scim, user_id, body: scim.put(f"Users/{user_id}", okta_user(**body)),
    "patch": lambda scim, user_id, body: scim.patch(
        f"Users/{user_id}", {"op": "replace", "value": body}
    ),
}

BAD_USER_ATTRIBUTES = {
    "long-userName": ({"userName": "a" * 151}, '"userName" is at most 150 characters.'),
    "long-externalId": ({"externalId": "x" * 10_000}, '"externalId" is at most 254 characters.'),
    "nul-givenName": (
        {"name": {"givenName": "Ja\u0000ne", "familyName": "Doe"}},
        "name.givenName: Contains a NUL character (\\u0000), which cannot be stored.",
    ),
    "surrogate-familyName": (
        {"name": {"givenName": "Jane", "familyName": "\ud800"}},
        "name.familyName: Contains an unpaired surrogate (\\ud800-\\udfff), which is not valid "
        "Unicode.",
    ),
    "nul-userName": (
        {"userName": "jane\u0000@example.com"},
        "userName: Contains a NUL character (\\u0000), which cannot be stored.",
    ),
    "long-givenName": (
        {"name": {"givenName": "J" * 151, "familyName": "Doe"}},
        '"name.givenName" is at most 150 characters.',
    ),
}


@pytest.mark.parametrize("write", USER_WRITES)
@pytest.mark.parametrize("bad", BAD_USER_ATTRIBUTES)
def test_unstorable_user_attributes_are_400_invalid_value_and_write_nothing(
    scim, jane_id, write, bad
):
    attributes, detail = BAD_USER_ATTRIBUTES[bad]
    before = scim_state()

    response = USER_WRITES[write](scim, jane_id, attributes)

    body = scim_error_of(response, 400)
    assert body["scimType"] == "invalidValue"
    assert detail in body["detail"]
    assert scim_state() == before


def test_a_user_name_of_exactly_150_characters_is_accepted(scim):
    user_name = "a" * 138 + "@example.com"

    json_of(scim.post("Users", okta_user(user_name, emails=[])), 201)

    assert User.objects.filter(username=user_name).exists()


GROUP_WRITES = {
    "post": lambda scim, group_id, body: scim.post("Groups", {"schemas": [GROUP_SCHEMA], **body}),
    "put": lambda scim, group_id, body: scim.put(
        f"Groups/{group_id}", {"schemas": [GROUP_SCHEMA], **body}
    ),
    "patch": lambda scim, group_id, body: scim.patch(
        f"Groups/{group_id}", {"op": "replace", "value": body}
    ),
}

BAD_GROUP_ATTRIBUTES = {
    "nul-displayName": (
        {"displayName": "Op\u0000s"},
        "displayName: Contains a NUL character (\\u0000), which cannot be stored.",
    ),
    "surrogate-displayName": (
        {"displayName": "Ops \udfff"},
        "displayName: Contains an unpaired surrogate (\\ud800-\\udfff), which is not valid "
        "Unicode.",
    ),
    "long-displayName": ({"displayName": "O" * 255}, '"displayName" is at most 254 characters.'),
    "long-externalId": (
        {"displayName": "Ops", "externalId": "x" * 10_000},
        '"externalId" is at most 254 characters.',
    ),
}


@pytest.mark.parametrize("write", GROUP_WRITES)
@pytest.mark.parametrize("bad", BAD_GROUP_ATTRIBUTES)
def test_unstorable_group_attributes_are_400_invalid_value_and_write_nothing(
    scim, group_id, write, bad
):
    attributes, detail = BAD_GROUP_ATTRIBUTES[bad]
    before = scim_state()

    response = GROUP_WRITES[write](scim, group_id, attributes)

    body = scim_error_of(response, 400)
    assert body["scimType"] == "invalidValue"
    assert detail in body["detail"]
    assert scim_state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "Users"), ("put", "Users/{user}"), ("patch", "Users/{user}"), ("post", "Groups")],
)
@pytest.mark.parametrize("depth", [33, 50_000])
def test_a_body_nested_too_deep_is_400_invalid_syntax(scim, jane_id, method, path, depth):
    text = json.dumps(okta_user(nickName="__DEEP__"))
    text = text.replace('"__DEEP__"', "[" * depth + "]" * depth)
    before = scim_state()

    response = scim.send(method, path.format(user=jane_id), text)

    body = scim_error_of(response, 400)
    assert body["scimType"] == "invalidSyntax"
    assert body["detail"] == "The JSON body nests arrays and objects deeper than 32 levels."
    assert scim_state() == before


def test_a_nul_anywhere_in_a_body_is_refused_even_where_signoff_keeps_nothing(scim, group_id):
    before = scim_state()

    response = scim.patch(
        f"Groups/{group_id}", {"op": "add", "path": "members", "value": [{"value": "1\u0000"}]}
    )

    body = scim_error_of(response, 400)
    assert body["scimType"] == "invalidValue"
    assert body["detail"] == (
        "Operations.0.value.0.value: Contains a NUL character (\\u0000), which cannot be stored."
    )
    assert scim_state() == before


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("patch", "Users/{user}", "[]"),
        ("patch", "Users/{user}", '"text"'),
        ("post", "Users/.search", "[1]"),
        ("post", "Users", b'{"userName": "\xff"}'),
    ],
    ids=["patch-list", "patch-string", "search-list", "not-utf8"],
)
def test_a_body_that_is_not_a_json_object_is_400(scim, jane_id, method, path, raw):
    before = scim_state()

    response = scim.send(method, path.format(user=jane_id), raw)

    assert scim_error_of(response, 400)["scimType"] == "invalidSyntax"
    assert scim_state() == before


@pytest.mark.parametrize("path", ["Users", "Groups"])
def test_a_filter_with_a_nul_is_400_invalid_filter(scim, jane_id, path):
    attribute = "userName" if path == "Users" else "displayName"

    response = scim.get(path, filter=f'{attribute} eq "jane\u0000"')

    body = scim_error_of(response, 400)
    assert body["scimType"] == "invalidFilter"
    assert body["detail"] == (
        "The filter contains a NUL character (\\u0000), which cannot be stored."
    )


def test_a_search_body_with_a_lone_surrogate_is_400(scim, jane_id):
    search = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName eq "\ud800"',
    }

    body = scim_error_of(scim.post("Users/.search", search), 400)

    assert body["scimType"] == "invalidValue"
    assert body["detail"].startswith("filter: Contains an unpaired surrogate")


def test_a_body_over_one_megabyte_is_413_and_writes_nothing(scim):
    before = scim_state()

    response = scim.post("Users", okta_user(nickName="x" * (1024 * 1024)))

    assert scim_error_of(response, 413)["detail"] == "The request body is too large."
    assert scim_state() == before


def test_an_id_with_a_nul_is_a_scim_404(scim, jane_id):
    scim_error_of(scim.get("Users/%00"), 404)
    scim_error_of(scim.send("put", "Groups/1%00", {"displayName": "x"}), 404)


@pytest.mark.parametrize(
    "path", ["Nope", "Users/abc/extra", "Users/", "Groups/1/members", "v1/Users", "Users/.search/x"]
)
def test_an_unknown_scim_path_is_a_scim_404(scim, path):
    for method in ("get", "post", "patch"):
        response = scim.send(method, path, {}) if method != "get" else scim.get(path)
        body = scim_error_of(response, 404)
        assert body["detail"] == f"No SCIM endpoint at /scim/v2/{path}."


@pytest.mark.parametrize("path", ["Nope", "Users/abc/extra"])
def test_an_unknown_scim_path_without_a_token_is_401_as_known_paths_are(client, db, path):
    known = client.get("/scim/v2/Users")
    unknown = client.get(f"/scim/v2/{path}")

    scim_error_of(known, 401)
    scim_error_of(unknown, 401)
    assert unknown["WWW-Authenticate"] == known["WWW-Authenticate"]


@pytest.fixture
def scim_admin(client, db):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    client.force_login(admin)
    return admin


def token_state() -> tuple:
    tokens = ScimToken.objects.order_by("pk").values_list("pk", "name", "revoked_at")
    return list(tokens), LedgerEntry.objects.count()


UNKNOWN_TOKEN = "No such token, or it is already revoked."


@pytest.mark.parametrize(
    ("revoke", "error"),
    [
        ("abc", UNKNOWN_TOKEN),
        ("999999", UNKNOWN_TOKEN),
        ("-1", UNKNOWN_TOKEN),
        ("1.5", UNKNOWN_TOKEN),
        ("9" * 30, UNKNOWN_TOKEN),
        ("", UNKNOWN_TOKEN),
        ("\x00", "Null characters are not allowed."),
    ],
)
def test_revoking_an_unknown_scim_token_is_a_400_form_error_and_changes_nothing(
    client, scim_admin, revoke, error
):
    identity.issue_scim_token(name="okta", actor=scim_admin)
    before = token_state()

    response = client.post(reverse("governance:scim_tokens"), {"revoke": revoke})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert token_state() == before


def test_revoking_a_revoked_token_again_is_a_form_error(client, scim_admin):
    token, _ = identity.issue_scim_token(name="okta", actor=scim_admin)
    identity.revoke_scim_token(token=token, actor=scim_admin)
    before = token_state()

    response = client.post(reverse("governance:scim_tokens"), {"revoke": token.pk})

    assert response.status_code == 400
    assert UNKNOWN_TOKEN in response.content.decode()
    assert token_state() == before


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Give the token a name, e.g. the identity provider&#x27;s."),
        ("   ", "Give the token a name, e.g. the identity provider&#x27;s."),
        ("okta\x00", "Null characters are not allowed."),
        ("o" * 101, "Ensure this value has at most 100 characters (it has 101)."),
    ],
    ids=["empty", "blank", "nul", "long"],
)
def test_a_bad_scim_token_name_is_a_400_form_error_and_issues_nothing(
    client, scim_admin, name, error
):
    before = token_state()

    response = client.post(reverse("governance:scim_tokens"), {"name": name})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert response.context["new_key"] == ""
    assert token_state() == before
