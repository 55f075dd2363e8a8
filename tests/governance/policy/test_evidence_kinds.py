"""Evidence kinds and the thresholds policies set on them (governance.policy.evidence).

What a pipeline may report for each documented kind, what the gate keeps of it, how a policy's
thresholds are checked when it is saved, combined across rules (the strictest wins) and judged
against a reported item, in words a person can act on.
"""

from __future__ import annotations

import pytest

from governance.policy import engine
from governance.policy.evidence import (
    EvidenceError,
    EvidenceRequirement,
    merge_requirement,
    problem,
    snapshot_item,
    summary_fields,
    validate_item,
    validate_requirement,
)

COUNT = "a whole number of 0 or more"
WHERE = "Rule 'r' (line 2)"


def requirement(kind: str = "tests", **thresholds) -> EvidenceRequirement:
    merged: dict[str, EvidenceRequirement] = {}
    merge_requirement(merged, {"kind": kind, "status": "passed", **thresholds}, "r")
    return merged[kind]


def judged(req: EvidenceRequirement, summary: dict, **kwargs) -> str | None:
    return problem(req, snapshot_item("passed", summary), **kwargs)


# --- What pipelines may report ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "summary"),
    [
        ("tests", {"passed": 812, "failed": 0, "skipped": 3, "total": 815}),
        ("tests", {"failed": 0}),
        ("tests", {"passed": 10, "failed": 0, "suite": "unit"}),
        ("coverage", {"percent": 85}),
        ("coverage", {"percent": 72.5}),
        ("coverage", {"percent": 0}),
        ("coverage", {"percent": 100.0}),
        ("security_scan", {"critical": 0, "high": 2, "medium": 5, "low": 9, "note": 1}),
        ("security_scan", {"critical": 0, "tool": "trivy 0.50"}),
        ("security_scan", {}),
        ("peer_review", {"url": "https://github.com/acme/api/pull/7", "reviewer": "alice"}),
        ("peer_review", {"url": "http://review.local/r/1", "reviewer": "first.last@acme"}),
        ("sbom", {"failed": -1, "anything": [1, 2]}),
    ],
)
def test_documented_summaries_are_accepted(kind, summary):
    assert validate_item(kind, "passed", summary) == {}


@pytest.mark.parametrize(
    ("kind", "summary", "message"),
    [
        ("tests", {"passed": -1}, f"'passed' must be {COUNT}, not -1."),
        ("tests", {"skipped": True}, f"'skipped' is a count: {COUNT}, not true or false."),
        ("tests", {"failed": 1.0}, f"'failed' is a count: {COUNT}, not 1.0."),
        ("tests", {"total": "812"}, f"'total' is a count: {COUNT}, not text."),
        ("tests", {"passed": None}, f"'passed' is a count: {COUNT}, not null."),
        ("tests", {"passed": 2**63}, f"'passed' must be at most {2**63 - 1}."),
        (
            "tests",
            {"passed": 10, "failed": 2, "skipped": 1, "total": 12},
            "'total' is 12, fewer than passed + failed + skipped (13).",
        ),
        ("coverage", {}, "'percent' is required: a number from 0 to 100."),
        ("coverage", {"percent": 100.5}, "'percent' must be a number from 0 to 100, not 100.5."),
        ("coverage", {"percent": -1}, "'percent' must be a number from 0 to 100, not -1."),
        (
            "coverage",
            {"percent": True},
            "'percent' must be a number from 0 to 100, not true or false.",
        ),
        ("coverage", {"percent": "85"}, "'percent' must be a number from 0 to 100, not text."),
        ("security_scan", {"critical": -2}, f"'critical' must be {COUNT}, not -2."),
        ("security_scan", {"high": 0.5}, f"'high' is a count: {COUNT}, not 0.5."),
        ("security_scan", {"note": False}, f"'note' is a count: {COUNT}, not true or false."),
        ("security_scan", {"low": [1]}, f"'low' is a count: {COUNT}, not a list."),
        (
            "security_scan",
            {"tool": "x" * 101},
            "'tool' is longer than 100 characters.",
        ),
        (
            "security_scan",
            {"tool": 3},
            "'tool' must be text of at most 100 characters, not 3.",
        ),
        ("peer_review", {"url": "https://r.example/1"}, "'reviewer' is required: a username."),
        ("peer_review", {"reviewer": "alice"}, "'url' is required: an http or https URL."),
        (
            "peer_review",
            {"url": "ftp://r.example/1", "reviewer": "alice"},
            "'url' must be an http or https URL of at most 500 characters.",
        ),
        (
            "peer_review",
            {"url": "https://r.example/1", "reviewer": "alice smith"},
            "'reviewer' must be a username (letters, digits and @.+-_), not 'alice smith'.",
        ),
        (
            "peer_review",
            {"url": "https://r.example/1", "reviewer": {"login": "alice"}},
            "'reviewer' must be a username, not an object.",
        ),
    ],
)
def test_bad_summaries_of_documented_kinds_are_refused_naming_the_field(kind, summary, message):
    assert validate_item(kind, "passed", summary) == {"summary": [message]}


def test_every_bad_field_of_an_item_is_reported_at_once():
    errors = validate_item("security_scan", "passed", {"critical": -1, "high": "none"})

    assert errors == {
        "summary": [
            f"'critical' must be {COUNT}, not -1.",
            f"'high' is a count: {COUNT}, not text.",
        ]
    }


def test_a_skipped_check_need_not_report_its_required_fields():
    assert validate_item("coverage", "skipped", {}) == {}
    assert validate_item("peer_review", "skipped", {}) == {}
    assert validate_item("coverage", "failed", {}) == {
        "summary": ["'percent' is required: a number from 0 to 100."]
    }


def test_each_kind_names_the_summary_fields_it_checks():
    assert summary_fields("tests") == {"passed", "failed", "skipped", "total"}
    assert summary_fields("coverage") == {"percent"}
    assert summary_fields("security_scan") == {"critical", "high", "medium", "low", "note", "tool"}
    assert summary_fields("peer_review") == {"url", "reviewer"}
    assert summary_fields("sbom") == frozenset()


# --- What the gate keeps of an item -------------------------------------------------------------


def test_the_snapshot_keeps_only_the_readings_requirements_use():
    summary = {
        "passed": 812,
        "failed": 0,
        "skipped": 3,
        "total": 815,
        "critical": 0,
        "high": 1,
        "percent": 85.5,
        "reviewer": " alice ",
        "url": "https://r.example/1",
        "suite": "unit",
    }

    assert snapshot_item("passed", summary) == {
        "status": "passed",
        "passed": 812,
        "failed": 0,
        "skipped": 3,
        "critical": 0,
        "high": 1,
        "percent": 85.5,
        "reviewer": "alice",
    }


def test_the_snapshot_drops_readings_that_cannot_count():
    # Rows stored before counts were checked may hold anything.
    summary = {"failed": -5, "passed": True, "percent": 140, "critical": "0", "reviewer": " "}

    assert snapshot_item("passed", summary) == {"status": "passed"}
    assert snapshot_item("failed", ["not", "a", "mapping"]) == {"status": "failed"}


# --- Thresholds a policy may set ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"kind": "tests", "min_passed": -1},
            f"{WHERE}, evidence 'tests' min_passed must be a whole number of at least 0, got -1.",
        ),
        (
            {"kind": "tests", "max_skipped": 1.5},
            f"{WHERE}, evidence 'tests' max_skipped must be a whole number of at least 0, got 1.5.",
        ),
        (
            {"kind": "tests", "max_failed": True},
            f"{WHERE}, evidence 'tests' max_failed must be a whole number of at least 0, got True.",
        ),
        (
            {"kind": "coverage", "min_coverage": 101},
            f"{WHERE}, evidence 'coverage' min_coverage must be a number from 0 to 100, got 101.",
        ),
        (
            {"kind": "coverage", "min_coverage": "80"},
            f"{WHERE}, evidence 'coverage' min_coverage must be a number from 0 to 100, got '80'.",
        ),
        (
            {"kind": "coverage", "min_coverage": True},
            f"{WHERE}, evidence 'coverage' min_coverage must be a number from 0 to 100, got True.",
        ),
        (
            {"kind": "security_scan", "max_findings": {"critical": 0, "urgent": 0}},
            f"{WHERE}, evidence 'security_scan' max_findings: unknown severity urgent; "
            "use critical, high, medium, low, note.",
        ),
        (
            {"kind": "security_scan", "max_findings": {"high": -1}},
            f"{WHERE}, evidence 'security_scan' max_findings high must be a whole number of "
            "at least 0, got -1.",
        ),
        (
            {"kind": "security_scan", "max_findings": 0},
            f"{WHERE}, evidence 'security_scan' max_findings must map severities to the most "
            "findings allowed, e.g. {critical: 0}.",
        ),
        (
            {"kind": "security_scan", "max_findings": {}},
            f"{WHERE}, evidence 'security_scan' max_findings must map severities to the most "
            "findings allowed, e.g. {critical: 0}.",
        ),
        (
            {"kind": "peer_review", "distinct_reviewer": "yes"},
            f"{WHERE}, evidence 'peer_review' distinct_reviewer must be true or false, got 'yes'.",
        ),
        (
            {"kind": "tests", "min_coverage": 80},
            f"{WHERE}, evidence 'tests': min_coverage does not apply to tests evidence; "
            "use max_failed, max_skipped, min_passed.",
        ),
        (
            {"kind": "coverage", "max_failed": 0, "distinct_reviewer": True},
            f"{WHERE}, evidence 'coverage': max_failed, distinct_reviewer does not apply to "
            "coverage evidence; use min_coverage.",
        ),
        (
            {"kind": "tests", "min_pased": 1},
            f"{WHERE}, evidence: unknown key(s) min_pased.",
        ),
    ],
)
def test_bad_thresholds_are_refused_naming_the_rule(raw, message):
    with pytest.raises(EvidenceError) as excinfo:
        validate_requirement(raw, WHERE)

    assert str(excinfo.value) == message


def test_a_policy_with_a_bad_threshold_cannot_be_saved():
    source = (
        "rules:\n  - id: r\n    require:\n      evidence:\n"
        "        - {kind: coverage, min_coverage: 180}\n"
    )

    with pytest.raises(engine.PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == (
        f"{WHERE}, evidence 'coverage' min_coverage must be a number from 0 to 100, got 180."
    )


def test_any_threshold_may_be_set_on_a_kind_of_ones_own():
    validate_requirement(
        {
            "kind": "unit-tests",
            "min_passed": 1,
            "max_failed": 0,
            "max_skipped": 0,
            "min_coverage": 50.5,
            "max_findings": {"critical": 0},
            "distinct_reviewer": False,
        },
        WHERE,
    )


# --- Combining rules: the strictest wins --------------------------------------------------------


def test_thresholds_from_several_rules_combine_strictest_wins():
    merged: dict[str, EvidenceRequirement] = {}
    merge_requirement(
        merged, {"kind": "tests", "min_passed": 1, "max_failed": 2, "max_skipped": 10}, "a"
    )
    merge_requirement(merged, {"kind": "tests", "min_passed": 100, "max_failed": 0}, "b")
    merge_requirement(merged, {"kind": "tests", "max_skipped": 5, "min_passed": 50}, "c")

    assert merged["tests"] == EvidenceRequirement(
        "tests", "passed", 0, ["a", "b", "c"], min_passed=100, max_skipped=5
    )


def test_coverage_findings_and_reviewer_combine_strictest_wins():
    merged: dict[str, EvidenceRequirement] = {}
    for rule, raw in [
        ("a", {"kind": "coverage", "min_coverage": 80}),
        ("b", {"kind": "coverage", "min_coverage": 72.5}),
        ("a", {"kind": "security_scan", "max_findings": {"critical": 0, "high": 5}}),
        ("b", {"kind": "security_scan", "max_findings": {"high": 0, "medium": 10}}),
        ("a", {"kind": "peer_review", "distinct_reviewer": True}),
        ("b", {"kind": "peer_review", "distinct_reviewer": False}),
    ]:
        merge_requirement(merged, raw, rule)

    assert merged["coverage"].min_coverage == 80
    assert merged["security_scan"].max_findings == {"critical": 0, "high": 0, "medium": 10}
    assert merged["peer_review"].distinct_reviewer is True


def test_a_rule_without_a_threshold_leaves_the_others_limit_in_place():
    merged: dict[str, EvidenceRequirement] = {}
    merge_requirement(merged, {"kind": "security_scan"}, "a")
    merge_requirement(merged, {"kind": "security_scan", "max_findings": {"critical": 0}}, "b")
    merge_requirement(merged, {"kind": "security_scan"}, "c")

    assert merged["security_scan"].max_findings == {"critical": 0}
    assert merged["security_scan"].rules == ["a", "b", "c"]


def test_the_plan_frozen_on_a_request_keeps_every_threshold():
    source = """
rules:
  - id: strict
    require:
      evidence:
        - {kind: tests, min_passed: 1, max_failed: 0, max_skipped: 3}
        - {kind: coverage, min_coverage: 80}
        - {kind: security_scan, max_findings: {critical: 0, high: 0}}
        - {kind: peer_review, distinct_reviewer: true}
"""
    plan = engine.evaluate(source, {})

    again = engine.Plan.from_dict(plan.to_dict())

    assert again.evidence == plan.evidence
    assert [e.describe() for e in again.evidence] == [
        "coverage evidence with status 'passed' and coverage of at least 80%",
        "peer_review evidence with status 'passed' and a reviewer other than the requester, "
        "pipeline trigger or change author",
        "security_scan evidence with status 'passed', at most 0 critical findings and "
        "at most 0 high findings",
        "tests evidence with status 'passed', at least 1 passed, at most 0 failed and "
        "at most 3 skipped",
    ]


def test_a_plan_frozen_before_thresholds_existed_still_loads():
    stored = {"evidence": [{"kind": "tests", "status": "passed", "max_failed": 0, "rules": ["r"]}]}

    plan = engine.Plan.from_dict(stored)

    assert plan.evidence == [EvidenceRequirement("tests", "passed", 0, ["r"])]
    assert plan.evidence[0].describe() == "tests evidence with status 'passed' and at most 0 failed"


# --- Judging a reported item --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "summary", "expected"),
    [
        ({"min_passed": 1}, {"passed": 1}, None),
        (
            {"min_passed": 1},
            {"passed": 0},
            "Evidence 'tests' reports 0 passed; at least 1 required.",
        ),
        (
            {"min_passed": 1},
            {"failed": 0},
            "Evidence 'tests' does not report a 'passed' count; the policy requires one.",
        ),
        ({"max_failed": 0}, {"failed": 0}, None),
        ({"max_failed": 0}, {"failed": 2}, "Evidence 'tests' reports 2 failed; at most 0 allowed."),
        (
            {"max_failed": 0},
            {"failed": -3},
            "Evidence 'tests' does not report a 'failed' count; the policy requires one.",
        ),
        ({"max_skipped": 5}, {"skipped": 5}, None),
        (
            {"max_skipped": 5},
            {"skipped": 6},
            "Evidence 'tests' reports 6 skipped; at most 5 allowed.",
        ),
        (
            {"max_skipped": 5},
            {"passed": 3},
            "Evidence 'tests' does not report a 'skipped' count; the policy requires one.",
        ),
        (
            {"min_passed": 10, "max_failed": 0},
            {"passed": 2, "failed": 1},
            "Evidence 'tests' reports 2 passed; at least 10 required. "
            "Evidence 'tests' reports 1 failed; at most 0 allowed.",
        ),
    ],
)
def test_test_count_thresholds(thresholds, summary, expected):
    assert judged(requirement("tests", **thresholds), summary) == expected


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"percent": 80}, None),
        ({"percent": 85.5}, None),
        ({"percent": 79.9}, "Evidence 'coverage' reports 79.9% coverage; at least 80% required."),
        (
            {},
            "Evidence 'coverage' does not report a coverage 'percent'; "
            "the policy requires at least 80%.",
        ),
        (
            {"percent": True},
            "Evidence 'coverage' does not report a coverage 'percent'; "
            "the policy requires at least 80%.",
        ),
    ],
)
def test_coverage_threshold(summary, expected):
    assert judged(requirement("coverage", min_coverage=80), summary) == expected


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"critical": 0, "high": 0, "medium": 40}, None),
        (
            {"critical": 2, "high": 0},
            "Evidence 'security_scan' reports 2 critical findings; at most 0 allowed.",
        ),
        (
            {"critical": 1, "high": 3},
            "Evidence 'security_scan' reports 1 critical finding; at most 0 allowed. "
            "Evidence 'security_scan' reports 3 high findings; at most 0 allowed.",
        ),
        (
            {"critical": 0},
            "Evidence 'security_scan' does not report a 'high' count; the policy requires one.",
        ),
    ],
)
def test_findings_threshold_by_severity(summary, expected):
    req = requirement("security_scan", max_findings={"high": 0, "critical": 0})

    assert judged(req, summary) == expected


def test_severities_without_a_limit_are_not_judged():
    req = requirement("security_scan", max_findings={"critical": 0})

    assert judged(req, {"critical": 0, "high": 99, "low": 1000}) is None


@pytest.mark.parametrize(
    ("summary", "conflicted", "expected"),
    [
        ({"reviewer": "alice"}, {"dave", "ci-bot"}, None),
        ({"reviewer": "alice"}, frozenset(), None),
        (
            {"reviewer": "dave"},
            {"dave", "ci-bot"},
            "Evidence 'peer_review' was reviewed by dave, who requested, triggered or authored "
            "this release; the policy requires another reviewer.",
        ),
        (
            {"reviewer": "Dave"},
            {"dave"},
            "Evidence 'peer_review' was reviewed by Dave, who requested, triggered or authored "
            "this release; the policy requires another reviewer.",
        ),
        (
            {"url": "https://r.example/1"},
            {"dave"},
            "Evidence 'peer_review' does not name a 'reviewer'; the policy requires a reviewer "
            "other than the requester, pipeline trigger or change author.",
        ),
    ],
)
def test_distinct_reviewer(summary, conflicted, expected):
    req = requirement("peer_review", distinct_reviewer=True)

    assert judged(req, summary, conflicted=conflicted) == expected


def test_without_distinct_reviewer_anyone_may_have_reviewed():
    req = requirement("peer_review")

    assert judged(req, {"reviewer": "dave"}, conflicted={"dave"}) is None


def test_missing_and_wrong_status_come_before_thresholds():
    req = requirement("coverage", min_coverage=80)

    assert problem(req, None) == (
        "Missing required evidence: coverage evidence with status 'passed' and coverage of "
        "at least 80%."
    )
    assert problem(req, snapshot_item("failed", {"percent": 10})) == (
        "Evidence 'coverage' is 'failed'; the policy requires 'passed'."
    )


def test_a_snapshot_stored_before_thresholds_existed_is_judged_fail_closed():
    # Snapshots used to keep {"status", "failed"} only; a newer threshold finds no reading.
    stored = {"status": "passed", "failed": 0}

    assert problem(requirement("tests", max_failed=0), stored) is None
    assert problem(requirement("tests", min_passed=1), stored) == (
        "Evidence 'tests' does not report a 'passed' count; the policy requires one."
    )
