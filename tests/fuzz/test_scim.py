"""SCIM 2.0 as Okta and Entra ID send it: filters (`governance.identity.scim_filters`) and the
bodies of Users PUT/PATCH and Groups POST/PATCH (`governance.identity.scim`); user creation
is fuzzed by tests/test_bad_input.py."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from governance.identity import services as identity
from governance.identity.models import IdentityGroup, MappedRoleGrant
from governance.people.models import User
from tests.fuzz.helpers import ENDPOINT, bodies, fingerprint
from tests.governance.identity.test_scim import (
    ERROR_SCHEMA,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM_JSON,
    entra_user,
    okta_user,
)
from tests.test_bad_input import hostile_text

pytestmark = pytest.mark.django_db
TABLES = (User, IdentityGroup, IdentityGroup.members.through, MappedRoleGrant)
SCIM_ANSWERS = {200, 201, 204, 400, 404, 409, 413}
ATTRIBUTES = [
    "userName",
    "USERNAME",
    "name.givenName",
    "name.familyName",
    "emails.value",
    'emails[type eq "work"].value',
    "externalId",
    "active",
    "displayName",
    "meta.created",
    "title",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
]
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ"]
comparisons = st.builds(
    "{} {} {}".format,
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(OPERATORS),
    st.one_of(
        hostile_text.map(json.dumps),
        st.sampled_from(["true", "false", "null", "42", "-1.5e3", '"True"', "2026-12-07T10:00Z"]),
    ),
)
# RFC 7644 §3.4.2.2's grammar: comparisons, presence, and/or/not, groups, value paths; and
# the same with a piece cut off or doubled, and text that is no filter at all.
filters = (
    st.recursive(
        comparisons | st.sampled_from(ATTRIBUTES).map("{} pr".format),
        lambda inner: st.one_of(
            st.builds("{} and {}".format, inner, inner),
            st.builds("{} or {}".format, inner, inner),
            inner.map("not ({})".format),
            inner.map("({})".format),
            inner.map("emails[{}]".format),
            inner.map(lambda text: text[: len(text) // 2]),
        ),
        max_leaves=4,
    )
    | hostile_text
)


def user_operations() -> list[dict]:
    """Entra ID's and Okta's PATCH operations on a user, in one request."""
    return [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "jane@example.com"},
        {"op": "replace", "path": "name.givenName", "value": "Jane"},
        {"op": "replace", "value": {"active": True, "name": {"familyName": "Doe"}}},
        {"op": "remove", "path": "externalId"},
        {"op": "replace", "path": "timezone", "value": "Europe/Berlin"},
        {
            "op": "replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "value": "Ops",
        },
    ]


def group_operations(member_id: str) -> list[dict]:
    return [
        {"op": "add", "path": "members", "value": [{"value": member_id, "display": "Jane"}]},
        {"op": "remove", "path": f'members[value eq "{member_id}"]'},
        {"op": "Replace", "path": "displayName", "value": "Payments approvers"},
        {"op": "replace", "value": {"externalId": "okta-grp-1", "displayName": "Approvers"}},
        {"op": "Remove", "path": "members"},
    ]


@pytest.fixture
def scim_key() -> str:
    return identity.issue_scim_token(name="okta", actor=None)[1]


@pytest.fixture
def provisioned(client, scim_key) -> dict[str, str]:
    """Jane (a user) and a group holding her, provisioned the way Okta does it."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {scim_key}"}
    user = client.post("/scim/v2/Users", json.dumps(okta_user()), SCIM_JSON, **headers).json()
    members = [{"value": user["id"]}]
    group = {"schemas": [GROUP_SCHEMA], "displayName": "Approvers", "members": members}
    created = client.post("/scim/v2/Groups", json.dumps(group), SCIM_JSON, **headers).json()
    return {"user": user["id"], "group": created["id"]}


def assert_scim_answer(response) -> None:
    assert response.status_code in SCIM_ANSWERS, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"] == SCIM_JSON
        body = response.json()
        assert body["schemas"] == [ERROR_SCHEMA]
        assert body["status"] == str(response.status_code)
        assert isinstance(body["detail"], str) and body["detail"]


@ENDPOINT
@given(resource=st.sampled_from(["Users", "Groups"]), query=filters)
@example(resource="Users", query='not (active ew "x")')  # a 500 before: boolean LIKE text
@example(resource="Users", query='active eq "yes"')  # a 500 before: not a boolean
@example(resource="Users", query='emails[emails[type eq "work"].value eq "x"]')  # a 500 before
def test_a_filter_finds_resources_or_is_refused_as_invalid(client, scim_key, resource, query):
    # Percent-encoded bytes as a client sends them, unpaired surrogates too (the test client
    # would refuse to encode those itself).
    encoded = quote(query.encode("utf-8", "surrogatepass"))

    response = client.get(
        f"/scim/v2/{resource}",
        QUERY_STRING=f"filter={encoded}",
        HTTP_AUTHORIZATION=f"Bearer {scim_key}",
    )

    assert_scim_answer(response)
    if response.status_code == 200:
        assert isinstance(response.json()["Resources"], list)


def documents_for(ids: dict[str, str]) -> st.SearchStrategy[tuple[str, str, dict]]:
    """(method, path, template) of each write Okta and Entra ID make on existing resources."""
    user, group, member = f"Users/{ids['user']}", f"Groups/{ids['group']}", ids["user"]
    return st.sampled_from(
        [
            ("patch", user, {"schemas": [PATCH_SCHEMA], "Operations": user_operations()}),
            ("put", user, {**okta_user(), "id": ids["user"]}),
            ("put", user, {**entra_user(), "id": ids["user"]}),
            ("post", "Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Release managers"}),
            ("patch", group, {"schemas": [PATCH_SCHEMA], "Operations": group_operations(member)}),
            ("put", group, {"schemas": [GROUP_SCHEMA], "displayName": "X", "members": []}),
        ]
    )


@ENDPOINT
@given(data=st.data())
def test_a_write_is_applied_or_refused_with_nothing_written(client, scim_key, provisioned, data):
    method, path, template = data.draw(documents_for(provisioned))
    body = data.draw(bodies(st.just(template)))
    before = fingerprint(*TABLES)

    call = getattr(client, method)
    response = call(
        f"/scim/v2/{path}", body, content_type=SCIM_JSON, HTTP_AUTHORIZATION=f"Bearer {scim_key}"
    )

    assert_scim_answer(response)
    if response.status_code >= 400:
        assert fingerprint(*TABLES) == before
