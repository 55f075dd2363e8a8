"""POST /api/v1/releases/: requesting approval from a pipeline, idempotently, refusing bad input."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, Evidence, Release
from changes.models import ChangeRecord
from governance.models import ApiToken, LedgerEntry
from tests import factories

URL = "/api/v1/releases/"


def assert_error(response, status: int, code: str, fields: dict | None = None) -> dict:
    """The API's one error shape: {"error": {"code", "message", "fields"}}, always JSON."""
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code
    assert error["message"]
    if fields is not None:
        assert error["fields"] == fields
    return error


def test_the_example_request_is_accepted(org, service, production, pipeline_bot, requester, api):
    body = factories.release_body()
    before = LedgerEntry.objects.count()

    response = api(pipeline_bot).post(URL, body)

    assert response.status_code == 201
    data = response.json()
    release = Release.objects.get()
    stage = release.approval.stages.get(key="service")
    assert data == {
        "id": release.pk,
        "service": "payments-api",
        "environment": "production",
        "version": "2.14.0",
        "image": "registry.example.com/payments/payments-api",
        "digest": body["artifact"]["digest"],
        "change": "CHG0012345",
        "status": "pending",
        "created_at": data["created_at"],
        "url": f"http://testserver/approvals/releases/{release.pk}/",
        "gate": {
            "status": "pending",
            "reasons": [
                "Waiting for Service approval: 0 of 2 approvals (eligible: alice, bob, "
                f"due {stage.due_at:%Y-%m-%d %H:%M} UTC)."
            ],
            "stages": [
                {
                    "key": "service",
                    "order": 10,
                    "name": "Service approval",
                    "status": "active",
                    "required": 2,
                    "approvals": [],
                },
                {
                    "key": "cab",
                    "order": 20,
                    "name": "CAB approval",
                    "status": "waiting",
                    "required": 1,
                    "approvals": [],
                },
            ],
            "digest": body["artifact"]["digest"],
        },
    }
    assert (release.requested_by, release.triggered_by, release.triggered_by_name) == (
        pipeline_bot,
        requester,
        "dave",
    )
    assert (release.pipeline_provider, release.pipeline_run_url) == (
        "github",
        "https://github.com/acme/payments-api/actions/runs/9001",
    )
    change = ChangeRecord.objects.get()
    assert (change.ref, change.type, change.title, change.state, change.author) == (
        "CHG0012345",
        "normal",
        "Payments API 2.14.0",
        "authorise",
        requester,
    )
    evidence = Evidence.objects.get()
    assert (evidence.kind, evidence.status, evidence.summary, evidence.reported_by) == (
        "tests",
        "passed",
        {"passed": 812, "failed": 0},
        pipeline_bot,
    )
    new_entries = LedgerEntry.objects.filter(seq__gt=before).order_by("seq")
    assert [(e.kind, e.actor) for e in new_entries] == [
        ("change.opened", "ci-bot"),
        ("approval.requested", "ci-bot"),
        ("change.state_changed", "ci-bot"),  # new → authorise: it waits for approval
    ]


def test_a_release_links_an_existing_change_record(org, pipeline_bot, api):
    first = api(pipeline_bot).post(URL, factories.release_body())
    second = api(pipeline_bot).post(URL, factories.release_body(version="2.14.1"))

    assert (first.status_code, second.status_code) == (201, 201)
    assert ChangeRecord.objects.count() == 1
    assert set(Release.objects.values_list("change__ref", flat=True)) == {"CHG0012345"}


def test_a_dev_release_is_approved_at_once(org, pipeline_bot, api):
    response = api(pipeline_bot).post(URL, factories.release_body(environment="dev"))

    assert response.status_code == 201
    assert response.json()["status"] == "approved"
    assert response.json()["gate"] == {
        "status": "approved",
        "reasons": ["Approved."],
        "stages": [],
        "digest": response.json()["digest"],
    }


# --- Idempotency ---------------------------------------------------------------------------------


def test_an_idempotent_retry_returns_the_same_release_and_creates_nothing(org, pipeline_bot, api):
    client = api(pipeline_bot)
    body = factories.release_body()
    first = client.post(URL, body, HTTP_IDEMPOTENCY_KEY="run-9001-attempt")
    after_first = factories.state_counts()

    retry = client.post(URL, body, HTTP_IDEMPOTENCY_KEY="run-9001-attempt")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["status"] == "pending"
    assert factories.state_counts() == after_first
    assert Release.objects.get().idempotency_key == "run-9001-attempt"


FIRST_BODY = factories.release_body()


@pytest.mark.parametrize(
    "change",
    [
        {"version": "2.15.0"},
        {"artifact": {**FIRST_BODY["artifact"], "digest": factories.digest("other")}},
        {"artifact": {**FIRST_BODY["artifact"], "image": "registry.example.com/forks/payments"}},
        {"environment": "staging"},
        {"change": {"ref": "CHG0099999", "type": "normal", "title": "Another change"}},
    ],
    ids=["version", "digest", "image", "environment", "change"],
)
def test_the_same_idempotency_key_with_a_different_body_conflicts(org, pipeline_bot, api, change):
    client = api(pipeline_bot)
    assert client.post(URL, FIRST_BODY, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    before = factories.state_counts()

    response = client.post(URL, {**FIRST_BODY, **change}, HTTP_IDEMPOTENCY_KEY="k-1")

    error = assert_error(response, 409, "invalid_transition", {})
    assert error["message"] == (
        "This Idempotency-Key was already used for a different release; use a new key."
    )
    assert factories.state_counts() == before


def test_idempotency_keys_belong_to_their_requester(org, pipeline_bot, requester, api):
    first = api(pipeline_bot).post(URL, factories.release_body(), HTTP_IDEMPOTENCY_KEY="k-1")
    other = api(requester).post(URL, factories.release_body(), HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, other.status_code) == (201, 201)
    assert first.json()["id"] != other.json()["id"]


def test_an_overlong_idempotency_key_is_refused(org, pipeline_bot, api):
    before = factories.state_counts()

    response = api(pipeline_bot).post(URL, factories.release_body(), HTTP_IDEMPOTENCY_KEY="k" * 201)

    error = assert_error(response, 400, "invalid", {})
    assert error["message"] == "Idempotency-Key must be at most 200 characters."
    assert factories.state_counts() == before


@pytest.mark.parametrize("key", ["key\x00with-nul", "key\nwith-newline", "tab\there"])
def test_an_idempotency_key_with_control_characters_is_refused(api, org, pipeline_bot, key):
    client = api(pipeline_bot)
    before = factories.state_counts()

    response = client.post(URL, factories.release_body(), HTTP_IDEMPOTENCY_KEY=key)

    error = assert_error(response, 400, "invalid", {})
    assert "printable" in error["message"]
    assert factories.state_counts() == before


# --- Bad input: 400 with field errors, nothing written -------------------------------------------

BAD_BODIES = [
    ("missing-change", {"change": None}, {"change": ["This field may not be null."]}),
    (
        "unknown-service",
        {"service": "nope"},
        {"service": ["Unknown service 'nope', or you may not request releases for it."]},
    ),
    (
        "unknown-environment",
        {"environment": "moon"},
        {"environment": ["Unknown environment 'moon'."]},
    ),
    (
        "malformed-digest",
        {"artifact": {"image": "r/p", "digest": "sha256:ABC"}},
        {"artifact": {"digest": ["Must be 'sha256:' followed by 64 lowercase hex digits."]}},
    ),
    (
        "version-list",
        {"version": [1, 2]},
        {"version": ["This value does not match the required pattern."]},
    ),
    (
        "version-with-spaces",
        {"version": "1.0 final"},
        {"version": ["This value does not match the required pattern."]},
    ),
    (
        "evidence-not-a-list",
        {"evidence": {"kind": "tests", "status": "passed"}},
        {"evidence": {"non_field_errors": ['Expected a list of items but got type "dict".']}},
    ),
    (
        "artifact-not-an-object",
        {"artifact": "registry/payments@sha256:00"},
        {"artifact": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}},
    ),
    (
        "unknown-change-type",
        {"change": {"ref": "CHG1", "type": "whenever"}},
        {"change": {"type": ['"whenever" is not a valid choice.']}},
    ),
    (
        "evidence-status",
        {"evidence": [{"kind": "tests", "status": "green"}]},
        {"evidence": {"0": {"status": ['"green" is not a valid choice.']}}},
    ),
    (
        "evidence-nested-summary",
        {"evidence": [{"kind": "tests", "status": "passed", "summary": {"by_suite": {"unit": 1}}}]},
        {"evidence": {"0": {"summary": ["'by_suite' must be a whole number, text or boolean."]}}},
    ),
    (
        "too-much-evidence",
        {"evidence": [{"kind": f"check-{i}", "status": "passed"} for i in range(51)]},
        {"evidence": ["At most 50 evidence items."]},
    ),
    (
        "run-url",
        {"pipeline": {"run_url": "not a url"}},
        {"pipeline": {"run_url": ["Enter a valid URL."]}},
    ),
]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [(c, f) for _, c, f in BAD_BODIES],
    ids=[name for name, _, _ in BAD_BODIES],
)
def test_bad_input_is_refused_with_field_errors_and_writes_nothing(
    org, pipeline_bot, api, changes, fields
):
    before = factories.state_counts()

    response = api(pipeline_bot).post(URL, factories.release_body(**changes))

    assert_error(response, 400, "invalid", fields)
    assert factories.state_counts() == before


def test_an_absent_change_record_is_a_field_error(org, pipeline_bot, api):
    body = factories.release_body()
    del body["change"]
    before = factories.state_counts()

    response = api(pipeline_bot).post(URL, body)

    error = assert_error(
        response,
        400,
        "invalid",
        {"change": ['A linked change record is required: {"ref": "CHG..."}.']},
    )
    assert error["message"] == (
        'Invalid input. change: A linked change record is required: {"ref": "CHG..."}.'
    )
    assert factories.state_counts() == before


def test_nested_field_errors_are_summarised_in_words(org, pipeline_bot, api):
    body = factories.release_body(
        artifact={"image": "r/p", "digest": "md5:1"},
        evidence=[{"kind": "tests", "status": "passed"}, {"kind": "scan", "status": "red"}],
    )

    error = assert_error(api(pipeline_bot).post(URL, body), 400, "invalid")

    assert error["message"] == (
        "Invalid input. artifact.digest: Must be 'sha256:' followed by 64 lowercase hex digits. "
        'evidence.1.status: "red" is not a valid choice.'
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [("[1, 2]", "invalid"), ('{"service": ', "parse_error"), ('"text"', "invalid")],
    ids=["json-list", "truncated-json", "json-string"],
)
def test_a_body_that_is_not_a_json_object_is_refused(org, pipeline_bot, client, raw, code):
    token = factories.token_for(pipeline_bot)
    before = factories.state_counts()

    response = client.post(
        URL, raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert_error(response, 400, code)
    assert factories.state_counts() == before


def test_a_body_over_one_megabyte_is_refused_with_413(org, pipeline_bot, api):
    body = factories.release_body(change={"ref": "CHG1", "title": "x" * (1024 * 1024)})
    before = factories.state_counts()

    response = api(pipeline_bot).post(URL, body)

    error = assert_error(response, 413, "payload_too_large", {})
    assert error["message"] == "The request body is too large."
    assert factories.state_counts() == before


# --- Authentication ------------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused_with_401(org, api):
    before = factories.state_counts()

    response = api().post(URL, factories.release_body())

    assert_error(response, 401, "not_authenticated", {})
    assert response.json()["error"]["message"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == "Bearer"
    assert factories.state_counts() == before


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer so_not-a-real-token", "Invalid, revoked or expired token."),
        ("Bearer two words", "Malformed Authorization header."),
        ("Bearer ", "Malformed Authorization header."),
    ],
    ids=["unknown", "two-words", "empty"],
)
def test_a_bad_token_is_refused_with_401(org, client, header, message):
    before = factories.state_counts()

    response = client.post(
        URL,
        json.dumps(factories.release_body()),
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )

    error = assert_error(response, 401, "authentication_failed", {})
    assert error["message"] == message
    assert factories.state_counts() == before


def test_a_revoked_token_is_refused_with_401(org, pipeline_bot, client):
    key = factories.token_for(pipeline_bot)
    ApiToken.objects.filter(user=pipeline_bot).update(revoked_at=timezone.now())
    before = factories.state_counts()

    response = client.post(
        URL,
        json.dumps(factories.release_body()),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert_error(response, 401, "authentication_failed", {})
    assert factories.state_counts() == before


def test_a_person_without_the_request_role_cannot_request(org, approver, api):
    before = factories.state_counts()

    response = api(approver).post(URL, factories.release_body())

    assert_error(
        response,
        400,
        "invalid",
        {"service": ["Unknown service 'payments-api', or you may not request releases for it."]},
    )
    assert factories.state_counts() == before
    assert ApprovalRequest.objects.count() == 0
