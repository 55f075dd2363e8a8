"""Bad input never reaches the database (invariant 7): each answer is a clear 4xx, nothing written.

Bodies are sent as an attacker sends them: raw bytes, with lone surrogates as the JSON escape
`\\ud800` (what `json.dumps` with `ensure_ascii=True` writes for an unpaired surrogate) and NUL as
`\\u0000`. PostgreSQL text and jsonb cannot store either, so without a check they end as a 500.
"""

from __future__ import annotations

import json

import pytest

from approvals.models import Evidence
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
