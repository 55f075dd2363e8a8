"""Evidence requirements (`governance/policy/evidence.py`): what a pipeline's evidence must say
and how a requirement reads to people, at the edges mutation testing showed no test pinned
down. Pure functions: no database."""

from __future__ import annotations

import pytest

from governance.policy import engine, evidence
from governance.policy.conditions import PolicyError
from tests.governance.policy.test_policy import rules

REVIEW = "https://review.example.com/"


@pytest.mark.parametrize(
    ("length", "problems"),
    [
        (evidence.MAX_URL_LENGTH, {}),
        (
            evidence.MAX_URL_LENGTH + 1,
            {"summary": ["'url' must be an http or https URL of at most 500 characters."]},
        ),
    ],
    ids=["at-the-limit", "past-it"],
)
def test_a_review_link_may_be_as_long_as_the_limit_and_no_longer(length, problems):
    url = REVIEW + "a" * (length - len(REVIEW))

    assert evidence.validate_item("peer_review", "approved", {"url": url, "reviewer": "bob"}) == (
        problems
    )


@pytest.mark.parametrize(
    ("summary", "problems"),
    [
        ({"passed": evidence.MAX_COUNT}, {}),
        (
            {"passed": evidence.MAX_COUNT + 1},
            {"summary": [f"'passed' must be at most {evidence.MAX_COUNT}."]},
        ),
        ({"tool": "t" * evidence.MAX_TOOL_LENGTH}, {}),
        (
            {"tool": "t" * (evidence.MAX_TOOL_LENGTH + 1)},
            {"summary": ["'tool' is longer than 100 characters."]},
        ),
    ],
    ids=["largest-count", "count-too-large", "longest-tool", "tool-too-long"],
)
def test_counts_and_tool_names_may_reach_their_limits_and_no_further(summary, problems):
    kind = "tests" if "passed" in summary else "security_scan"

    assert evidence.validate_item(kind, "passed", summary) == problems


@pytest.mark.parametrize(
    ("summary", "count"),
    [
        ({"failed": 3}, 3),
        ({"failed": 0}, 0),
        ({"failed": -1}, None),
        ({"failed": True}, None),
        ({}, None),
        ("3 failed", None),
    ],
    ids=["three", "none-failed", "negative", "boolean", "absent", "not-a-mapping"],
)
def test_the_failure_count_shown_is_a_usable_count_or_nothing(summary, count):
    assert evidence.failed_count(summary) == count


def test_a_total_is_checked_against_the_counts_reported_only():
    """Counts left out are not counted: 5 passed of a total of 5 is consistent."""
    assert evidence.validate_item("tests", "passed", {"passed": 5, "total": 5}) == {}
    assert evidence.validate_item("tests", "passed", {"passed": 5, "failed": 1, "total": 5}) == {
        "summary": ["'total' is 5, fewer than passed + failed + skipped (6)."]
    }


def test_finding_limits_read_in_severity_order_with_one_finding_in_the_singular():
    requirement = evidence.EvidenceRequirement(
        "security_scan", "clean", None, max_findings={"high": 2, "critical": 1, "low": 0}
    )

    assert requirement.describe() == (
        "security_scan evidence with status 'clean', at most 1 critical finding, "
        "at most 2 high findings and at most 0 low findings"
    )


def test_a_policy_error_keeps_its_message_and_place_for_the_editor():
    error = PolicyError("Rule 'r' (line 2) must be a mapping.", line=2, column=5)

    assert (error.message, error.line, error.column) == (
        "Rule 'r' (line 2) must be a mapping.",
        2,
        5,
    )
    assert str(error) == error.message


def merged(*requirements: dict) -> evidence.EvidenceRequirement:
    combined: dict[str, evidence.EvidenceRequirement] = {}
    for index, raw in enumerate(requirements):
        evidence.merge_requirement(combined, raw, f"rule-{index + 1}")
    return combined[requirements[0]["kind"]]


@pytest.mark.parametrize(
    ("limit", "loose", "strict"),
    [("max_skipped", 5, 2), ("max_failed", 3, 0), ("min_passed", 10, 50), ("min_coverage", 70, 85)],
)
def test_two_rules_limits_combine_to_the_stricter_whichever_comes_first(limit, loose, strict):
    for first, second in ((loose, strict), (strict, loose)):
        requirement = merged({"kind": "tests", limit: first}, {"kind": "tests", limit: second})

        assert getattr(requirement, limit) == strict
        assert requirement.rules == ["rule-1", "rule-2"]


def test_finding_limits_combine_per_severity_to_the_lower():
    requirement = merged(
        {"kind": "security_scan", "max_findings": {"high": 2, "critical": 0}},
        {"kind": "security_scan", "max_findings": {"high": 5, "medium": 10}},
    )

    assert requirement.max_findings == {"high": 2, "critical": 0, "medium": 10}


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("{kind: [tests]}", ": each evidence requirement needs a 'kind'."),
        ("{kind: 5}", ": each evidence requirement needs a 'kind'."),
        ("{kind: tests, 1: x, zz: y}", ", evidence: unknown key(s) 1, zz."),
        (
            "{kind: security_scan, max_findings: {huge: 1, 2: 1}}",
            ", evidence 'security_scan' max_findings: unknown severity 2, huge; use critical, "
            "high, medium, low, note.",
        ),
    ],
    ids=["kind-a-list", "kind-a-number", "unknown-keys", "unknown-severities"],
)
def test_a_requirement_is_refused_when_the_policy_is_read_not_when_it_is_evaluated(
    requirement, message
):
    """A list where the kind's name belongs had passed, and then failed every evaluation of
    the policy (an unhashable kind): every release it applied to could not be planned."""
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules(f"  - id: r\n    require:\n      evidence: [{requirement}]\n"))

    assert str(excinfo.value) == "Rule 'r' (line 2)" + message
