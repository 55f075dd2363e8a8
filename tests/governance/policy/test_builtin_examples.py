"""Every built-in example of the default policy, on releases as they come: what each adds, and
that it adds nothing where it does not apply. Pure engine: contexts as `policy_context` builds
them (the shape `SAMPLE_CONTEXT` documents)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from governance.management.commands.load_default_policy import DEFAULT_POLICY
from governance.policy import engine, standard
from governance.policy.evidence import snapshot_item
from governance.policy.reference import SAMPLE_CONTEXT

DEFAULT = DEFAULT_POLICY.read_text()


def release(**changes) -> dict:
    """A tier-3 service without compliance tags, to on-premises production, normal change, no
    incidents: the plainest production release. `changes` set dotted paths."""
    context = copy.deepcopy(SAMPLE_CONTEXT)
    context["service"].update(
        slug="search-api", tier=3, compliance_tags=[], business_function="", vendor=""
    )
    context["environment"].update(platform="on_premises", platforms=["on_premises"], targets=[])
    context["evidence"] = {"tests": {"status": "passed", "passed": 40, "failed": 0}}
    context["incidents"]["last_7_days"]["total"] = 0
    for path, value in changes.items():
        node = context
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return context


def plan_for(context: dict) -> engine.Plan:
    return engine.evaluate(DEFAULT, context)


def stages(plan: engine.Plan) -> list[tuple[str, str, int, int]]:
    return [(s.key, s.approvers, s.count, s.order) for s in plan.stages]


def test_the_plainest_production_release_needs_dual_control_and_passing_tests_only():
    plan = plan_for(release())

    assert stages(plan) == [("service", "service_approvers", 2, 10)]
    assert [e.kind for e in plan.evidence] == ["tests"]
    assert plan.checkpoints == {} and plan.checks == {} and plan.slas == [] and plan.blocks == []
    assert plan.errors == []


# --- Compliance checkpoints ------------------------------------------------------------------


def test_sox_puts_distinct_people_a_live_change_and_retained_evidence_on_its_checklist():
    plan = plan_for(release(service__compliance_tags=["SOX"]))

    assert plan.checkpoints == {
        "SOX": [
            {"kind": "check", "key": "distinct_people"},
            {"kind": "check", "key": "change_record"},
            {"kind": "check", "key": "evidence_retained"},
        ]
    }
    assert set(plan.checks) == {"distinct_people", "change_record", "evidence_retained"}


def test_sox_asks_nothing_outside_regulated_environments():
    plan = plan_for(release(service__compliance_tags=["SOX"], environment__regulated=False))

    assert plan.checkpoints == {}


@pytest.mark.parametrize("tag", ["HIPAA", "PHI"])
def test_hipaa_adds_a_security_approver_in_parallel_and_a_passing_scan(tag):
    plan = plan_for(release(service__compliance_tags=[tag]))

    assert stages(plan) == [
        ("security", "security_approvers", 1, 10),
        ("service", "service_approvers", 2, 10),
    ]
    assert [group[0].order for group in plan.stage_groups()] == [10]  # one group: parallel
    scan = next(e for e in plan.evidence if e.kind == "security_scan")
    assert (scan.status, scan.max_findings) == ("passed", None)
    assert plan.checkpoints["HIPAA"] == [
        {"kind": "stage", "key": "security"},
        {"kind": "evidence", "key": "security_scan"},
    ]


def test_pci_needs_a_clean_scan_and_a_peer_review_by_someone_else():
    plan = plan_for(release(service__compliance_tags=["PCI"]))

    by_kind = {e.kind: e for e in plan.evidence}
    assert by_kind["security_scan"].max_findings == {"critical": 0, "high": 0}
    assert by_kind["peer_review"].distinct_reviewer is True
    assert [item["key"] for item in plan.checkpoints["PCI"]] == [
        "security",
        "security_scan",
        "peer_review",
    ]


def test_an_emergency_on_a_pci_service_takes_the_emergency_path_reviewed_afterwards():
    plan = plan_for(release(service__compliance_tags=["PCI"], change__type="emergency"))

    assert stages(plan) == [("service", "service_approvers", 1, 10)]
    assert plan.retro_review is True
    assert "PCI" not in plan.checkpoints


def test_a_tier_1_sox_service_in_production_goes_service_then_cab():
    plan = plan_for(release(service__tier=1, service__compliance_tags=["SOX"]))

    assert stages(plan) == [
        ("service", "service_approvers", 2, 10),
        ("cab", "cab", 1, 20),
    ]
    assert [[s.key for s in group] for group in plan.stage_groups()] == [["service"], ["cab"]]


# --- Test and scan criteria ------------------------------------------------------------------


def test_production_tests_must_have_run_and_none_failed():
    plan = plan_for(release())

    tests = plan.evidence[0]
    assert (tests.min_passed, tests.max_failed) == (1, 0)
    assert tests.rules == ["production-tests-green", "production-tests-ran"]


def test_payments_need_eighty_percent_coverage_in_production_only():
    production = plan_for(release(service__business_function="payments"))
    staging = plan_for(release(service__business_function="payments", environment__risk="medium"))

    coverage = next(e for e in production.evidence if e.kind == "coverage")
    assert coverage.min_coverage == 80
    assert all(e.kind != "coverage" for e in staging.evidence)


# --- SLA-aligned thresholds --------------------------------------------------------------------


def test_a_business_critical_function_gets_more_approvers_shorter_due_times_and_a_target():
    plan = plan_for(release(service__business_function="payments"))

    service = plan.stages[0]
    assert (service.count, service.sla_hours, service.escalate_hours, service.escalate_to) == (
        3,
        4,
        2,
        "platform",
    )
    assert plan.slas == [
        {
            "id": "business-critical",
            "description": "Business-critical service level",
            "min_approvers": 3,
            "due_hours": 4,
            "escalate_hours": 2,
            "escalate_to": "platform",
            "rule": "business-critical-sla",
        }
    ]
    assert "business-critical-sla (SLA business-critical)" in service.rules


def test_the_sla_never_loosens_a_shorter_due_time_and_spares_emergencies():
    emergency = plan_for(release(service__business_function="payments", change__type="emergency"))

    assert emergency.slas == []
    assert emergency.stages[0].sla_hours == 1  # the emergency rule's own hour stands


# --- After the deployment: post-deploy verification ------------------------------------------


def test_tier_1_production_deployments_are_verified_for_fifteen_minutes_every_minute():
    plan = plan_for(release(service__tier=1))

    assert plan.verification == {
        "minutes": 15,
        "interval_seconds": 60,
        "rules": ["tier-1-production-verification"],
    }
    assert engine.Plan.from_dict(plan.to_dict()).verification == plan.verification


@pytest.mark.parametrize(
    "changes",
    [
        {},  # tier 3
        {"service__tier": 2},
        {"service__tier": 1, "environment__risk": "medium"},  # staging
        {"service__tier": 1, "environment__risk": "low"},  # development
    ],
    ids=["tier-3", "tier-2", "tier-1-staging", "tier-1-dev"],
)
def test_no_verification_below_tier_1_or_outside_production(changes):
    assert plan_for(release(**changes)).verification is None


def test_an_emergency_on_a_tier_1_service_is_verified_too():
    plan = plan_for(release(service__tier=1, change__type="emergency"))

    assert plan.verification["minutes"] == 15


# --- Live tightening from incidents ----------------------------------------------------------


@pytest.mark.parametrize(("incidents", "sre"), [(2, False), (3, True), (7, True)])
def test_three_incidents_in_a_week_add_an_sre_review_between_service_and_cab(incidents, sre):
    plan = plan_for(release(service__tier=1, incidents__last_7_days__total=incidents))

    keys = [s.key for s in plan.stages]
    assert keys == (["service", "sre", "cab"] if sre else ["service", "cab"])
    if sre:
        review = plan.stages[1]
        assert (review.approvers, review.order) == ("cab", 15)
        assert plan.matched_rules[-1]["values"] == {
            "environment.risk": "high",
            "incidents.last_7_days.total": incidents,
        }


# --- One rule on every platform ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "targets", "scanned"),
    [
        ("on_premises", [], False),
        ("kubernetes", [], True),
        ("on_premises", ["aws"], True),
        ("on_premises", ["gcp"], True),
        ("azure", [], True),
        ("saas", [], False),
    ],
)
def test_cloud_and_cluster_production_releases_carry_a_scan_whatever_the_platform(
    platform, targets, scanned
):
    platforms = sorted({platform, *targets})
    plan = plan_for(
        release(
            environment__platform=platform,
            environment__platforms=platforms,
            environment__targets=[{"slug": t, "platform": t} for t in targets],
        )
    )

    scan = next((e for e in plan.evidence if e.kind == "security_scan"), None)
    assert (scan is not None) is scanned
    if scanned:
        assert scan.max_findings == {"critical": 0}
        # The same normalised requirement, named by the same rule, on every platform.
        assert scan.rules == ["cloud-and-cluster-scans"]


def test_a_vendor_run_service_is_not_scanned_by_us_on_a_cluster():
    plan = plan_for(
        release(
            service__vendor="acme-payroll",
            environment__platform="kubernetes",
            environment__platforms=["kubernetes"],
        )
    )

    assert all(e.kind != "security_scan" for e in plan.evidence)


# --- Standard changes --------------------------------------------------------------------------

TEMPLATE = "web-copy-refresh"
# A Tuesday, 11:00 in London (UTC+0 in December).
IN_WINDOW = datetime(2026, 12, 8, 11, 0, tzinfo=UTC)


def web_content(**changes) -> dict:
    values = {
        "service__slug": "web-frontend",
        "environment__slug": "production",
        "change__type": "standard",
        "release__version": "content-2026.12",
        "release__standard_change": TEMPLATE,
    }
    values.update(changes)
    return release(**values)


def latest(context: dict) -> dict:
    return {kind: snapshot_item(item["status"], item) for kind, item in context["evidence"].items()}


def test_a_standard_change_inside_its_template_applies():
    context = web_content()

    outcome = standard.assess(DEFAULT, TEMPLATE, context, latest(context), IN_WINDOW)

    assert outcome.applies
    assert outcome.template.owner == "grace"
    assert [e.describe() for e in outcome.evidence] == [
        "tests evidence with status 'passed' and at most 0 failed"
    ]


@pytest.mark.parametrize(
    ("changes", "moment", "reason"),
    [
        ({}, datetime(2026, 12, 8, 17, 0, tzinfo=UTC), "it applies only Mon, Tue, Wed, Thu"),
        ({}, datetime(2026, 12, 11, 11, 0, tzinfo=UTC), "it applies only Mon, Tue, Wed, Thu"),
        ({"service__slug": "payments-api"}, IN_WINDOW, "does not cover service payments-api"),
        ({"environment__slug": "dev"}, IN_WINDOW, "does not cover environment dev"),
        ({"change__type": "normal"}, IN_WINDOW, "the change is normal, not standard"),
        ({"release__version": "3.9.0"}, IN_WINDOW, "its condition"),
        (
            {"evidence": {"tests": {"status": "passed", "passed": 3, "failed": 1}}},
            IN_WINDOW,
            "reports 1 failed",
        ),
        ({"evidence": {}}, IN_WINDOW, "Missing required evidence: tests"),
        ({}, datetime(2027, 7, 1, 11, 0, tzinfo=UTC), "it was due for review on 2027-06-30"),
    ],
)
def test_a_standard_change_that_fails_a_condition_says_which(changes, moment, reason):
    context = web_content(**changes)

    outcome = standard.assess(DEFAULT, TEMPLATE, context, latest(context), moment)

    assert not outcome.applies
    assert any(reason in failure for failure in outcome.failures), outcome.failures


def test_an_unknown_template_is_named():
    context = web_content()

    outcome = standard.assess(DEFAULT, "no-such", context, latest(context), IN_WINDOW)

    assert outcome.failures == ["no standard change 'no-such' in the policy"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("    owner: grace\n", "'name' is required"),
        (
            "    name: X\n    owner: grace\n    services: [a]\n    environments: [b]\n",
            "'review_by' must be a date",
        ),
        (
            "    name: X\n    owner: grace\n    services: []\n    environments: [b]\n"
            "    review_by: 2027-01-01\n",
            "'services' must be a non-empty list",
        ),
        (
            "    name: X\n    owner: grace\n    services: [a]\n    environments: [b]\n"
            "    review_by: 2027-01-01\n    window: {start: '17:00', end: '09:00'}\n",
            "'start' must come before 'end'",
        ),
        (
            "    name: X\n    owner: grace\n    services: [a]\n    environments: [b]\n"
            "    review_by: 2027-01-01\n    window: {start: '09:00', end: '17:00', "
            "timezone: Mars/Olympus}\n",
            "unknown time zone",
        ),
        (
            "    name: X\n    owner: grace\n    services: [a]\n    environments: [b]\n"
            "    review_by: 2027-01-01\n    when: service.tier\n",
            "must be true or false",
        ),
    ],
)
def test_a_malformed_template_is_refused_when_the_policy_is_parsed(template, message):
    source = "rules:\n  - id: r\nstandard_changes:\n  - id: t\n" + template

    with pytest.raises(engine.PolicyError, match=message):
        engine.parse(source)


# --- Blocks, checks and publish-time errors ------------------------------------------------------


def test_a_block_names_the_values_it_read():
    source = (
        "rules:\n  - id: base\n  - id: no-world\n    when: size(plan.world_open) > 0\n"
        "    require:\n      block: 'Opens ingress to the world: {plan.world_open}'\n"
    )
    context = release(plan__world_open=["aws_security_group.web", "aws_security_group_rule.ssh"])

    plan = engine.evaluate(source, context)

    assert plan.blocks == [
        "Opens ingress to the world: aws_security_group.web, aws_security_group_rule.ssh "
        "(policy rule no-world)"
    ]


def test_two_rules_drawing_one_stage_from_two_sources_are_refused_with_the_place():
    source = (
        "rules:\n  - id: a\n    require:\n      stages: [{key: s, approvers: cab}]\n"
        "  - id: b\n    require:\n      stages: [{key: s, approvers: service_approvers}]\n"
    )

    with pytest.raises(engine.PolicyError) as excinfo:
        engine.parse(source)

    assert "stage 's' is drawn from service_approvers, but rule 'a' draws it from cab" in str(
        excinfo.value
    )
    assert (excinfo.value.line, excinfo.value.column) == (5, 5)


def test_a_condition_giving_a_number_is_refused_at_publishing_and_blocks_at_run_time():
    with pytest.raises(engine.PolicyError, match="must be true or false, but gives 2"):
        engine.parse("rules:\n  - id: r\n    when: service.tier + 1\n")
    # A condition that is boolean for a typical release but not for this one fails closed.
    source = "rules:\n  - id: r\n    when: 'service.tier == 1 ? true : service.name'\n"
    engine.parse(source)

    plan = engine.evaluate(source, release(service__tier=3))

    assert plan.errors == [
        "Policy rule 'r' gave 'Payments API', not true or false; an administrator must fix "
        "its condition."
    ]


def test_an_unknown_sla_and_an_unknown_check_are_refused():
    with pytest.raises(engine.PolicyError, match="SLA 'gold' is not defined"):
        engine.parse("rules:\n  - id: r\n    require: {sla: gold}\n")
    with pytest.raises(engine.PolicyError, match="checks must be a list of"):
        engine.parse("rules:\n  - id: r\n    require: {checks: [four_eyes]}\n")


def test_the_values_a_condition_read_leave_string_literals_and_absent_paths_out():
    values = engine.referenced_values(
        '"service.tier" != "" && service.tier == 1 && has(evidence.scan)',
        release(service__tier=1),
    )

    assert values == {"service.tier": 1}
