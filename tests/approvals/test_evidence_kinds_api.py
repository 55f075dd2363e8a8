"""Evidence kinds through the pipeline API: bad summaries refused with field errors and nothing
stored, a peer review by the release's own people refused on both paths, and a policy's coverage
threshold holding the gate until the pipeline reports enough coverage.

Both paths: the summary of an item sent with the approval request (`POST /api/v1/releases/`,
errors under `evidence.<index>.summary`) and one added later (`POST .../evidence/`, errors under
`summary`). The release under test is dave's, requested by ci-bot (`triggered_by: dave`).
"""

from __future__ import annotations

import pytest

from approvals.models import Evidence, Release
from governance.models import Policy
from governance.policy.services import publish_policy
from tests import factories

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"
COUNT = "a whole number of 0 or more"
REVIEW_URL = "https://github.com/acme/payments-api/pull/42"
OWN_REVIEW = (
    "'reviewer' must be someone other than the requester and whoever triggered the pipeline; "
    "{} is one of them."
)


@pytest.fixture
def pipeline(api, pipeline_bot):
    """ci-bot's client; the token is issued (and ledgered) before any count is taken."""
    return api(pipeline_bot)


def evidence_url(release: Release) -> str:
    return f"{RELEASES}{release.pk}/evidence/"


def review(reviewer: str) -> dict:
    return {
        "kind": "peer_review",
        "status": "passed",
        "summary": {"url": REVIEW_URL, "reviewer": reviewer},
    }


def green_tests() -> dict:
    return {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}


def refused(response, fields: dict) -> None:
    """A 400 in the API's error envelope with exactly these field errors."""
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert (error["code"], error["fields"]) == ("invalid", fields)
    assert error["message"].startswith("Invalid input. ")


BAD_ITEMS = [
    (
        {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0.5}},
        f"'failed' is a count: {COUNT}, not 0.5.",
    ),
    (
        {"kind": "tests", "status": "passed", "summary": {"passed": True, "failed": 0}},
        f"'passed' is a count: {COUNT}, not true or false.",
    ),
    (
        {"kind": "tests", "status": "passed", "summary": {"skipped": -4, "failed": 0}},
        f"'skipped' must be {COUNT}, not -4.",
    ),
    (
        {"kind": "coverage", "status": "passed", "summary": {"percent": 101}},
        "'percent' must be a number from 0 to 100, not 101.",
    ),
    (
        {"kind": "coverage", "status": "passed", "summary": {"percent": "85%"}},
        "'percent' must be a number from 0 to 100, not text.",
    ),
    (
        {"kind": "coverage", "status": "passed", "summary": {}},
        "'percent' is required: a number from 0 to 100.",
    ),
    (
        {"kind": "security_scan", "status": "passed", "summary": {"critical": "0"}},
        f"'critical' is a count: {COUNT}, not text.",
    ),
    (
        {"kind": "security_scan", "status": "failed", "summary": {"high": 1.5}},
        f"'high' is a count: {COUNT}, not 1.5.",
    ),
    (
        {"kind": "peer_review", "status": "passed", "summary": {"reviewer": "alice"}},
        "'url' is required: an http or https URL.",
    ),
    (
        {
            "kind": "peer_review",
            "status": "passed",
            "summary": {"url": "javascript:alert(1)", "reviewer": "alice"},
        },
        "'url' must be an http or https URL of at most 500 characters.",
    ),
    (
        # A kind of one's own stays free-form, but floats are still no counts there.
        {"kind": "sbom", "status": "passed", "summary": {"components": 1.5}},
        "'components' must be a whole number, text or boolean.",
    ),
]
BAD_IDS = [
    "tests-float",
    "tests-boolean",
    "tests-negative",
    "coverage-over-100",
    "coverage-text",
    "coverage-missing",
    "scan-text",
    "scan-float",
    "review-no-url",
    "review-bad-url",
    "own-kind-float",
]


# --- Bad summaries: a 400 naming the field, nothing stored --------------------------------------


@pytest.mark.parametrize(("item", "message"), BAD_ITEMS, ids=BAD_IDS)
def test_a_bad_summary_in_an_approval_request_is_refused_and_nothing_is_stored(
    org, pipeline, item, message
):
    before = factories.state_counts()

    response = pipeline.post(RELEASES, factories.release_body(evidence=[green_tests(), item]))

    refused(response, {"evidence": {"1": {"summary": [message]}}})
    assert factories.state_counts() == before


@pytest.mark.parametrize(("item", "message"), BAD_ITEMS, ids=BAD_IDS)
def test_bad_evidence_added_to_a_release_is_refused_and_nothing_is_stored(
    production_release, pipeline, item, message
):
    before = factories.state_counts()
    gate_before = pipeline.get(f"{RELEASES}{production_release.pk}/gate").json()

    response = pipeline.post(evidence_url(production_release), item)

    refused(response, {"summary": [message]})
    assert factories.state_counts() == before
    assert pipeline.get(f"{RELEASES}{production_release.pk}/gate").json() == gate_before


def test_documented_kinds_are_stored_as_reported(production_release, pipeline):
    items = [
        {"kind": "tests", "status": "passed", "summary": {"passed": 9, "failed": 0, "skipped": 1}},
        {"kind": "coverage", "status": "passed", "summary": {"percent": 85.5}},
        {
            "kind": "security_scan",
            "status": "passed",
            "summary": {"critical": 0, "high": 0, "medium": 3, "tool": "trivy"},
        },
        review("alice"),
    ]

    statuses = [pipeline.post(evidence_url(production_release), item).status_code for item in items]

    assert statuses == [201, 201, 201, 201]
    stored = production_release.evidence.order_by("pk").values_list("kind", "summary")
    assert list(stored)[-4:] == [(item["kind"], item["summary"]) for item in items]


# --- A peer review by the release's own people --------------------------------------------------


@pytest.mark.parametrize(
    "reviewer",
    ["dave", "DAVE", "d\u0430ve", "dave@example.com", "ci-bot"],
    ids=["trigger", "trigger-upper-case", "trigger-look-alike", "trigger-email", "requester"],
)
def test_a_review_by_the_requester_or_trigger_is_refused_with_the_request(org, pipeline, reviewer):
    before = factories.state_counts()

    response = pipeline.post(
        RELEASES, factories.release_body(evidence=[green_tests(), review(reviewer)])
    )

    refused(response, {"evidence": {"1": {"summary": [OWN_REVIEW.format(reviewer)]}}})
    assert factories.state_counts() == before


@pytest.mark.parametrize(
    "reviewer",
    ["dave", "Dave", "d\u0430ve", "dave@example.com", "ci-bot"],
    ids=["trigger", "trigger-capitalised", "trigger-look-alike", "trigger-email", "requester"],
)
def test_a_review_by_the_requester_or_trigger_is_refused_when_added_later(
    production_release, pipeline, reviewer
):
    before = factories.state_counts()

    response = pipeline.post(evidence_url(production_release), review(reviewer))

    refused(response, {"summary": [OWN_REVIEW.format(reviewer)]})
    assert factories.state_counts() == before


def test_a_person_requesting_directly_cannot_report_their_own_review(org, api, requester):
    before = factories.state_counts()
    body = factories.release_body(evidence=[review("dave")])
    del body["pipeline"]

    response = api(requester).post(RELEASES, body)

    refused(response, {"evidence": {"0": {"summary": [OWN_REVIEW.format("dave")]}}})
    assert factories.state_counts() == before


def test_a_trigger_name_matching_nobody_still_cannot_review(org, pipeline):
    body = factories.release_body(evidence=[review("zed")])
    body["pipeline"]["triggered_by"] = "zed"
    before = factories.state_counts()

    response = pipeline.post(RELEASES, body)

    refused(response, {"evidence": {"0": {"summary": [OWN_REVIEW.format("zed")]}}})
    assert factories.state_counts() == before


def test_a_review_by_someone_else_is_accepted_on_both_paths(
    org, pipeline, production_release, approver
):
    created = pipeline.post(RELEASES, factories.release_body(evidence=[review("alice")]))
    added = pipeline.post(evidence_url(production_release), review("bob"))

    assert (created.status_code, added.status_code) == (201, 201)
    release = Release.objects.get(pk=created.json()["id"])
    assert release.evidence.get().summary == {"url": REVIEW_URL, "reviewer": "alice"}
    assert production_release.evidence.get(kind="peer_review").summary["reviewer"] == "bob"


# --- Who may add evidence of the documented kinds -----------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"),
    [(None, 401), ("outsider", 404), ("approver", 404), ("pipeline_bot", 201)],
    ids=["anonymous", "no-role", "approver-may-only-look", "pipeline"],
)
def test_adding_a_coverage_report_needs_the_request_role(
    request, production_release, api, persona, status
):
    client = api(request.getfixturevalue(persona) if persona else None)
    before = factories.state_counts()

    response = client.post(
        evidence_url(production_release),
        {"kind": "coverage", "status": "passed", "summary": {"percent": 91}},
    )

    assert response.status_code == status
    if status == 201:
        latest = Evidence.objects.filter(release=production_release).latest("pk")
        assert (latest.kind, latest.summary) == ("coverage", {"percent": 91})
    else:
        assert factories.state_counts() == before


# --- A policy's threshold holds the gate until the pipeline reports enough ----------------------

COVERAGE_POLICY = """
rules:
  - id: production-one-approver
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1, order: 10}
  - id: production-coverage
    description: Production releases need at least 80% line coverage.
    when: environment.risk == "high"
    require:
      evidence:
        - {kind: coverage, status: passed, min_coverage: 80}
"""


def test_a_release_held_for_coverage_is_approved_once_85_percent_is_reported(
    org, pipeline, approver
):
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), source=COVERAGE_POLICY, actor=None
    )
    created = pipeline.post(RELEASES, factories.release_body(evidence=[green_tests()]))
    release = Release.objects.get(pk=created.json()["id"])
    gate_url = f"{RELEASES}{release.pk}/gate"
    factories.decide(release, approver)
    held = pipeline.get(gate_url).json()

    low = pipeline.post(
        evidence_url(release),
        {"kind": "coverage", "status": "passed", "summary": {"percent": 72.5}},
    ).json()
    enough = pipeline.post(
        evidence_url(release), {"kind": "coverage", "status": "passed", "summary": {"percent": 85}}
    ).json()

    assert (held["status"], held["reasons"]) == (
        "blocked",
        [
            "Missing required evidence: coverage evidence with status 'passed' and coverage "
            "of at least 80%."
        ],
    )
    assert (low["status"], low["reasons"]) == (
        "blocked",
        ["Evidence 'coverage' reports 72.5% coverage; at least 80% required."],
    )
    assert enough["status"] == "approved"
    assert pipeline.get(gate_url).json()["status"] == "approved"


REVIEW_POLICY = """
rules:
  - id: production-reviewed
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1, order: 10}
      evidence:
        - {kind: peer_review, status: passed, distinct_reviewer: true}
"""


def test_a_review_by_the_changes_author_passes_intake_but_the_gate_refuses_it(
    org, pipeline, approver
):
    # erin's pipeline opened CHG0012345 (she is its author); dave's release joins that change.
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=REVIEW_POLICY, actor=None)
    first = factories.release_body(evidence=[green_tests()])
    first["pipeline"]["triggered_by"] = "erin"
    assert pipeline.post(RELEASES, first).status_code == 201
    created = pipeline.post(RELEASES, factories.release_body(version="2.15.0", evidence=[]))
    release = Release.objects.get(pk=created.json()["id"])
    factories.decide(release, approver)

    by_author = pipeline.post(evidence_url(release), review("erin"))
    by_other = pipeline.post(evidence_url(release), review("bob"))

    assert by_author.status_code == 201
    assert (by_author.json()["status"], by_author.json()["reasons"]) == (
        "blocked",
        [
            "Evidence 'peer_review' was reviewed by erin, who requested, triggered or authored "
            "this release; the policy requires another reviewer."
        ],
    )
    assert by_other.json()["status"] == "approved"


def test_evidence_on_a_checklist_is_named_with_its_checkpoint_in_the_gate_reason(
    org, pipeline, approver
):
    """`checkpoint: PCI` on the coverage rule makes coverage a PCI item: the gate's reason names
    the checklist, as the release page's PCI checklist does."""
    source = COVERAGE_POLICY.replace(
        "  - id: production-coverage\n", "  - id: production-coverage\n    checkpoint: PCI\n"
    )
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=source, actor=None)
    created = pipeline.post(RELEASES, factories.release_body(evidence=[green_tests()]))
    release = Release.objects.get(pk=created.json()["id"])
    factories.decide(release, approver)

    low = pipeline.post(
        evidence_url(release),
        {"kind": "coverage", "status": "passed", "summary": {"percent": 72.5}},
    ).json()

    assert (low["status"], low["reasons"]) == (
        "blocked",
        ["PCI: Evidence 'coverage' reports 72.5% coverage; at least 80% required."],
    )
