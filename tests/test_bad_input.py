"""Bad input never reaches the database (invariant 7): each answer is a clear 4xx, nothing written.

Bodies are sent as an attacker sends them: raw bytes, with lone surrogates as the JSON escape
`\\ud800` (what `json.dumps` with `ensure_ascii=True` writes for an unpaired surrogate) and NUL as
`\\u0000`. PostgreSQL text and jsonb cannot store either, so without a check they end as a 500.
The property tests at the end throw generated documents (deep nesting, NUL, lone surrogates, huge
strings, negative numbers, floats, nested objects) at the release request, the evidence endpoint
and SCIM user creation: never a 5xx, always the documented error shape, nothing written on a 4xx.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.models import Evidence, Release
from governance.identity import services as identity
from governance.models import LedgerEntry, User
from tests import factories

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"
NUL = "Contains a NUL character (\\u0000), which cannot be stored."
KEY_NUL = "A key contains a NUL character (\\u0000), which cannot be stored."
SURROGATE = "Contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode."


class RawApi(factories.ApiClient):
    """The pipeline API client, posting bodies exactly as given (no re-encoding)."""

    def post_raw(self, path: str, text: str | bytes):
        return self.client.post(path, text, content_type="application/json", **self.headers)


@pytest.fixture
def pipeline(client, pipeline_bot) -> RawApi:
    """The pipeline bot's client; its token is issued (and ledgered) before any count is taken."""
    return RawApi(client, pipeline_bot)


def api_error(response, status: int, code: str) -> dict:
    """The API's one error shape, with the expected status and machine code."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code
    assert error["message"]
    return error


def with_summary(summary: dict) -> dict:
    return factories.release_body(
        evidence=[{"kind": "tests", "status": "passed", "summary": summary}]
    )


# --- The pipeline API's JSON parser ------------------------------------------------------------


def test_a_nul_in_an_evidence_summary_is_refused_with_its_path(org, pipeline):
    body = json.dumps(with_summary({"passed": 812, "failed": 0, "note": "all\u0000green"}))
    assert "\\u0000" in body
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, body)

    error = api_error(response, 400, "nul_character")
    assert error["fields"] == {"evidence": {"0": {"summary": {"note": [NUL]}}}}
    assert error["message"] == f"Invalid input. evidence.0.summary.note: {NUL}"
    assert factories.state_counts() == before


def test_a_nul_in_a_key_is_refused(org, pipeline):
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, json.dumps(with_summary({"a\u0000": 1})))

    error = api_error(response, 400, "nul_character")
    assert error["fields"] == {"evidence": {"0": {"summary": [KEY_NUL]}}}
    assert factories.state_counts() == before


def test_a_nul_in_evidence_posted_to_a_release_is_refused(production_release, pipeline):
    body = json.dumps({"kind": "tests", "status": "passed", "summary": {"by": "ci\u0000"}})
    before = factories.state_counts()

    response = pipeline.post_raw(f"{RELEASES}{production_release.pk}/evidence/", body)

    error = api_error(response, 400, "nul_character")
    assert error["fields"] == {"summary": {"by": [NUL]}}
    assert factories.state_counts() == before


@pytest.mark.parametrize("depth", [33, 1_000, 50_000])
def test_a_body_nested_too_deep_is_refused_without_recursing(org, pipeline, depth):
    body = json.dumps(with_summary({"note": "__DEEP__"}))
    body = body.replace('"__DEEP__"', "[" * depth + "]" * depth)
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, body)

    error = api_error(response, 400, "nesting_too_deep")
    assert error["message"] == "The JSON body nests arrays and objects deeper than 32 levels."
    assert error["fields"] == {}
    assert factories.state_counts() == before


def test_brackets_inside_strings_are_not_nesting(org, pipeline):
    body = factories.release_body(change={"ref": "CHG1", "title": "[" * 100 + "{" * 100})

    response = pipeline.post_raw(RELEASES, json.dumps(body))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_a_lone_surrogate_is_refused(org, pipeline, text):
    body = json.dumps(factories.release_body(change={"ref": "CHG1", "title": text}))
    assert "\\ud" in body and text not in body  # Sent as the escape, as an attacker would.
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, body)

    error = api_error(response, 400, "lone_surrogate")
    assert error["fields"] == {"change": {"title": [SURROGATE]}}
    assert error["message"] == f"Invalid input. change.title: {SURROGATE}"
    assert factories.state_counts() == before


def test_a_lone_surrogate_in_an_evidence_summary_is_refused(org, pipeline):
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, json.dumps(with_summary({"by": "\udfff"})))

    error = api_error(response, 400, "lone_surrogate")
    assert error["fields"] == {"evidence": {"0": {"summary": {"by": [SURROGATE]}}}}
    assert factories.state_counts() == before


def test_a_surrogate_pair_is_an_ordinary_character(org, pipeline):
    body = json.dumps(factories.release_body(change={"ref": "CHG1", "title": "Ship it \U0001f680"}))
    assert "\\ud83d\\ude80" in body

    response = pipeline.post_raw(RELEASES, body)

    assert response.status_code == 201, response.content
    assert Evidence.objects.count() == 1


def test_a_number_too_large_for_a_float_is_refused(org, pipeline):
    body = json.dumps(with_summary({"note": "__BIG__"})).replace('"__BIG__"', "1e400")
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, body)

    api_error(response, 400, "number_out_of_range")
    assert factories.state_counts() == before


def test_a_body_that_is_not_utf8_is_a_parse_error(org, pipeline):
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, b'{"service": "\xff\xfe"}')

    api_error(response, 400, "parse_error")
    assert factories.state_counts() == before


# --- Evidence summary counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ({"passed": 812, "failed": -5}, "'failed' must be a whole number of 0 or more, not -5."),
        ({"critical": -1}, "'critical' must be a whole number of 0 or more, not -1."),
        ({"failed": True}, "'failed' is a count: a whole number of 0 or more, not true or false."),
        ({"failed": "0"}, "'failed' is a count: a whole number of 0 or more, not text."),
        ({"failed": 2**63}, f"'failed' must be at most {2**63 - 1}."),
        ({"x" * 101: 1}, "Keys are at most 100 characters."),
    ],
    ids=["negative-failed", "negative-other", "boolean-failed", "text-failed", "huge", "long-key"],
)
def test_evidence_summary_counts_are_whole_numbers_of_zero_or_more(org, pipeline, summary, message):
    before = factories.state_counts()

    response = pipeline.post_raw(RELEASES, json.dumps(with_summary(summary)))

    error = api_error(response, 400, "invalid")
    assert error["fields"] == {"evidence": {"0": {"summary": [message]}}}
    assert factories.state_counts() == before


def test_a_negative_failed_count_never_satisfies_at_most_zero_failed(
    production_release, approver, second_approver, cab_member, pipeline
):
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    url = f"{RELEASES}{production_release.pk}/evidence/"
    red = {"kind": "tests", "status": "passed", "summary": {"passed": 811, "failed": 1}}
    assert pipeline.post_raw(url, json.dumps(red)).json()["status"] == "blocked"
    before = factories.state_counts()

    response = pipeline.post_raw(
        url,
        json.dumps({"kind": "tests", "status": "passed", "summary": {"failed": -5}}),
    )

    error = api_error(response, 400, "invalid")
    assert error["fields"] == {"summary": ["'failed' must be a whole number of 0 or more, not -5."]}
    assert factories.state_counts() == before
    gate = pipeline.get(f"{RELEASES}{production_release.pk}/gate").json()
    assert gate["status"] == "blocked"


# --- Property test: whatever arrives, a clear 4xx and nothing written, or a success --------------

SCIM_JSON = "application/scim+json"
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
API_ANSWERS = {200, 201, 400, 403, 404, 409, 413}
SCIM_ANSWERS = {201, 400, 409, 413}
DEEP = "__nest-deeply-here__"
PROPERTY = settings(
    max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

numbers = st.one_of(st.integers(-10, 10), st.integers(), st.floats(allow_nan=False), st.just(2**63))
# Text as it arrives from outside: ordinary, hostile (NUL, lone surrogates, quotes, a surrogate
# pair), control and surrogate code points mixed in, and longer than any column.
hostile_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\x00", "ok\x00", "\ud800", "a\udfffb", "\U0001f680", "1'", "%00"]),
    st.just(DEEP),
    st.text(st.characters(categories=["Cs", "Cc", "Ll", "Nd", "Po"]), max_size=8),
    st.sampled_from([151, 255, 10_000, 1_100_000]).map(lambda size: "x" * size),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | hostile_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=10,
)
depths = st.sampled_from([32, 33, 1_000, 50_000]) | st.integers(1, 60_000)
# What each example plants at one place in the document, so every run tries each of them.
hazards = st.one_of(
    st.just(DEEP),
    st.sampled_from(["\x00", "ok\x00", "\ud800", "a\udfffb"]),
    st.integers(max_value=-1),
    st.floats(allow_nan=False),
    st.sampled_from([151, 10_000, 1_100_000]).map(lambda size: "x" * size),
    st.dictionaries(hostile_text, json_values, min_size=1, max_size=3),
    json_values,
)


def hostile_body(data: st.DataObject, template: dict) -> str:
    """`mutated(data, template)` as JSON text, as an attacker sends it.

    `json.dumps` escapes lone surrogates as `\\ud800`; wherever a value is the DEEP marker the
    text gets brackets nested to a drawn depth, up to 60,000 (beyond what json.loads can take).
    """
    text = json.dumps(mutated(data, template))
    depth = data.draw(depths)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)


def mutated(data: st.DataObject, template: dict) -> dict:
    """A copy of `template` with a hazard planted and keys dropped, replaced or added.

    Wherever the text is to nest deeply the document holds the DEEP marker instead (see
    `hostile_body`), so parsers that take documents already decoded can be given it too.
    """

    def mutate(node: dict) -> dict:
        for key in list(node):
            action = data.draw(st.sampled_from(["keep", "drop", "replace", "recurse", "recurse"]))
            if action == "drop":
                del node[key]
            elif action == "replace":
                node[key] = data.draw(json_values)
            elif action == "recurse" and isinstance(node[key], dict):
                mutate(node[key])
            elif action == "recurse" and isinstance(node[key], list):
                # Into the objects of a list too: evidence items are where summaries live.
                node[key] = [mutate(item) if isinstance(item, dict) else item for item in node[key]]
        node.update(data.draw(st.dictionaries(hostile_text, json_values, max_size=2)))
        return node

    document = copy.deepcopy(template)
    path = data.draw(st.sampled_from(list(places(document))))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(hazards)
    return mutate(document)


def places(node: object, path: tuple = ()) -> Iterator[tuple]:
    """The path of every value in a (small) document: object keys and list indexes."""
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in children:
        yield (*path, key)
        if isinstance(child, dict | list):
            yield from places(child, (*path, key))


def written() -> dict[str, int]:
    return {
        model.__name__: model.objects.count() for model in (Release, Evidence, User, LedgerEntry)
    }


def assert_api_answer(response) -> None:
    assert response.status_code in API_ANSWERS, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "fields"}
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["fields"], dict)


@PROPERTY
@given(data=st.data())
def test_release_requests_never_fail_and_refusals_write_nothing(org, pipeline, data):
    before = written()

    response = pipeline.post_raw(RELEASES, hostile_body(data, factories.release_body()))

    assert_api_answer(response)
    if response.status_code >= 400:
        assert written() == before


@PROPERTY
@given(data=st.data())
def test_evidence_never_fails_and_refusals_write_nothing(production_release, pipeline, data):
    template = {
        "kind": "tests",
        "status": "passed",
        "summary": data.draw(st.dictionaries(hostile_text, json_values, max_size=4)),
        "url": "https://ci.example.com/runs/1",
    }
    before = written()

    response = pipeline.post_raw(
        f"{RELEASES}{production_release.pk}/evidence/", hostile_body(data, template)
    )

    assert_api_answer(response)
    if response.status_code >= 400:
        assert written() == before


@PROPERTY
@given(data=st.data())
def test_scim_user_creation_never_fails_and_refusals_write_nothing(client, db, data):
    _, key = identity.issue_scim_token(name="okta", actor=None)
    template = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "jane.doe@example.com",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": True, "value": "jane.doe@example.com", "type": "work"}],
        "externalId": "00ujl29u0le5T6Aj10h7",
        "active": True,
        "timezone": "Europe/London",
    }
    before = written()

    response = client.post(
        "/scim/v2/Users",
        hostile_body(data, template),
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code in SCIM_ANSWERS, (response.status_code, response.content[:300])
    assert response["Content-Type"] == SCIM_JSON
    if response.status_code >= 400:
        body = response.json()
        assert body["schemas"] == [SCIM_ERROR]
        assert body["status"] == str(response.status_code)
        assert isinstance(body["detail"], str) and body["detail"]
        assert written() == before
