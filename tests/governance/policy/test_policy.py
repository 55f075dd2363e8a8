"""The policy engine: the default policy's plans, strictest-wins merging, refusing bad documents."""

from __future__ import annotations

import hashlib

import pytest

from approvals import services
from approvals.models import ApprovalRequest
from governance.exceptions import InvalidPolicy
from governance.management.commands.load_default_policy import DEFAULT_POLICY
from governance.models import LedgerEntry, Policy, PolicyVersion
from governance.policy import engine
from governance.policy.engine import EvidenceRequirement, PolicyError, StageRequirement
from governance.policy.reference import NO_PLAN
from governance.policy.services import active_policy_version, publish_policy
from tests import factories

DEFAULT = DEFAULT_POLICY.read_text()
RISK = {"dev": "low", "staging": "medium", "production": "high"}


def context(
    env: str = "production",
    *,
    tier: int = 3,
    tags: tuple[str, ...] = (),
    change_type: str = "normal",
    evidence: dict | None = None,
) -> dict:
    """A policy context shaped like `approvals.context.policy_context` builds it."""
    return {
        "release": {"version": "1.0.0", "image": "registry.example.com/svc", "digest": "sha256:00"},
        "service": {
            "slug": "svc",
            "name": "svc",
            "tier": tier,
            "compliance_tags": list(tags),
            "team": "payments",
            "vendor": "",
            "business_function": "",
        },
        "environment": {
            "slug": env,
            "name": env,
            "risk": RISK[env],
            "regulated": env == "production",
            "platform": "on_premises",
            "platforms": ["on_premises"],
            "targets": [],
        },
        "change": {"ref": "CHG0000001", "type": change_type, "state": "open"},
        "evidence": {"tests": {"status": "passed", "passed": 10, "failed": 0}}
        if evidence is None
        else evidence,
        "incidents": {"open": 0, "open_blocking": 0, "last_7_days": {"total": 0}},
        "plan": dict(NO_PLAN),
    }


def rules(*bodies: str) -> str:
    """A policy document from rule bodies written as YAML list items."""
    return "rules:\n" + "".join(bodies)


def matched(plan: engine.Plan) -> list[str]:
    return [rule["id"] for rule in plan.matched_rules]


# --- The default policy --------------------------------------------------------------------------


def test_dev_release_needs_no_stages():
    plan = engine.evaluate(DEFAULT, context("dev", tier=1, tags=("SOX",)))

    assert plan.stages == []
    assert plan.evidence == []
    assert matched(plan) == ["dev-self-service"]
    assert plan.errors == []
    assert (plan.dual_control, plan.retro_review, plan.approval_valid_hours) == (False, False, None)


def test_staging_needs_one_service_approver():
    plan = engine.evaluate(DEFAULT, context("staging", tier=1))

    assert plan.stages == [
        StageRequirement(
            key="service",
            name="Service approval",
            approvers="service_approvers",
            count=1,
            order=10,
            step_up=False,
            sla_hours=24,
            rules=["staging-one-approver"],
        ),
    ]
    assert plan.evidence == []
    assert plan.dual_control is False
    assert plan.errors == []


@pytest.mark.parametrize(
    ("tier", "tags"), [(1, ()), (3, ("SOX",)), (1, ("SOX",))], ids=["tier-1", "sox", "both"]
)
def test_production_critical_or_sox_needs_two_service_approvers_then_the_cab(tier, tags):
    plan = engine.evaluate(DEFAULT, context("production", tier=tier, tags=tags))

    assert [(s.key, s.approvers, s.count, s.order, s.sla_hours) for s in plan.stages] == [
        ("service", "service_approvers", 2, 10, 8),
        ("cab", "cab", 1, 20, 24),
    ]
    assert plan.evidence == [
        EvidenceRequirement(
            kind="tests",
            status="passed",
            max_failed=0,
            min_passed=1,
            rules=["production-tests-green", "production-tests-ran"],
        ),
    ]
    assert plan.dual_control is True
    assert plan.approval_valid_hours == 72
    assert plan.retro_review is False
    sox = ["sox-checkpoint"] if "SOX" in tags else []
    # Tier-1 production deployments are also verified afterwards (post-deploy verification).
    verified = ["tier-1-production-verification"] if tier == 1 else []
    assert matched(plan) == [
        "production-dual-control",
        "production-tests-green",
        "critical-or-sox-cab",
        *sox,
        "production-tests-ran",
        *verified,
    ]
    assert plan.errors == []


def test_production_tier_3_without_sox_has_no_cab_stage():
    plan = engine.evaluate(DEFAULT, context("production", tier=3, tags=("GDPR",)))

    assert [(s.key, s.count) for s in plan.stages] == [("service", 2)]
    assert plan.dual_control is True
    assert matched(plan) == [
        "production-dual-control",
        "production-tests-green",
        "production-tests-ran",
    ]


def test_emergency_change_needs_one_approver_and_a_retro_review():
    plan = engine.evaluate(
        DEFAULT, context("production", tier=1, tags=("SOX",), change_type="emergency")
    )

    assert plan.stages == [
        StageRequirement(
            key="service",
            name="Emergency approval",
            approvers="service_approvers",
            count=1,
            order=10,
            step_up=False,
            sla_hours=1,
            rules=["emergency-fast-path"],
        ),
    ]
    assert plan.retro_review is True
    assert plan.dual_control is False
    assert plan.approval_valid_hours == 12
    assert [e.kind for e in plan.evidence] == ["tests"]
    # SOX's checklist holds on the emergency path too; the CAB reviews the release afterwards.
    assert matched(plan) == [
        "production-tests-green",
        "emergency-fast-path",
        "sox-checkpoint",
        "production-tests-ran",
        "tier-1-production-verification",
    ]


def test_emergency_change_to_dev_stays_self_service():
    plan = engine.evaluate(DEFAULT, context("dev", change_type="emergency"))

    assert plan.stages == []
    assert plan.retro_review is False
    assert matched(plan) == ["dev-self-service"]


# --- Combining rules: the strictest wins ---------------------------------------------------------

STRICT_PAIR = rules(
    """  - id: lenient
    when: "true"
    require:
      stages:
        - {key: service, name: Lenient, approvers: service_approvers, count: 1, order: 30,
           sla_hours: 24}
      evidence:
        - {kind: tests, max_failed: 5}
      approval_valid_hours: 72
""",
    """  - id: strict
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Strict, approvers: service_approvers, count: 3, order: 10,
           sla_hours: 4, step_up: true}
      evidence:
        - {kind: tests, max_failed: 0}
      approval_valid_hours: 8
      dual_control: true
""",
)


def test_strictest_requirement_wins_when_two_rules_hit_the_same_stage():
    plan = engine.evaluate(STRICT_PAIR, context("production"))

    assert plan.stages == [
        StageRequirement(
            key="service",
            name="Lenient",
            approvers="service_approvers",
            count=3,
            order=10,
            step_up=True,
            sla_hours=4,
            rules=["lenient", "strict"],
        ),
    ]
    assert plan.evidence == [
        EvidenceRequirement(
            kind="tests", status="passed", max_failed=0, rules=["lenient", "strict"]
        ),
    ]
    assert plan.approval_valid_hours == 8
    assert plan.dual_control is True


def test_only_the_rules_that_hold_contribute():
    plan = engine.evaluate(STRICT_PAIR, context("staging"))

    assert [(s.count, s.sla_hours, s.rules) for s in plan.stages] == [(1, 24, ["lenient"])]
    assert plan.evidence[0].max_failed == 5
    assert plan.approval_valid_hours == 72
    assert plan.dual_control is False


def test_a_stage_sla_from_one_rule_survives_a_rule_without_one():
    source = rules(
        "  - id: a\n    require:\n      stages:\n        - {key: cab, approvers: cab, count: 1}\n",
        "  - id: b\n    require:\n      stages:\n"
        "        - {key: cab, approvers: cab, count: 2, sla_hours: 6}\n",
    )

    plan = engine.evaluate(source, context())

    assert [(s.key, s.name, s.count, s.sla_hours, s.order) for s in plan.stages] == [
        ("cab", "Cab", 2, 6, 100)
    ]


# --- Refusing documents that cannot be used ------------------------------------------------------


def test_broken_cel_is_refused_naming_the_rule_line_and_column():
    source = rules("  - id: prod-check\n    when: environment.risk ==\n")

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    message = str(excinfo.value)
    assert message.startswith(
        "Rule 'prod-check' (line 2): CEL syntax error in 'when' at line 3, column 30: "
    )
    # The file's own place: right after `environment.risk ==`, where the condition stops.
    assert (excinfo.value.line, excinfo.value.column) == (3, 30)
    assert "Syntax error: mismatched input '<EOF>'" in message


def test_broken_cel_in_a_multi_line_condition_names_the_yaml_line():
    source = rules(
        "  - id: ok\n    when: 'true'\n",
        '  - id: two-lines\n    when: |\n      environment.risk == "high" &&\n'
        "        service.tier ==\n",
    )

    with pytest.raises(
        PolicyError,
        match=r"^Rule 'two-lines' \(line 4\): CEL syntax error in "
        r"'when' at line 7, column 24: Syntax error",
    ):
        engine.parse(source)


def test_unknown_variable_is_refused():
    source = rules('  - id: typo\n    when: enviroment.risk == "high"\n')

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == (
        "Rule 'typo' (line 2): 'when' uses unknown variable(s) enviroment; "
        "available: release, service, environment, change, evidence, incidents, plan."
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("    whenn: 'true'\n", "Rule 'r' (line 2): unknown key(s) whenn."),
        (
            "    require:\n      approvals: 2\n",
            "Rule 'r' (line 2), require: unknown key(s) approvals.",
        ),
        (
            "    require:\n      stages:\n        - {key: s, approvers: cab, quorum: 2}\n",
            "Rule 'r' (line 2), stage: unknown key(s) quorum.",
        ),
        (
            "    require:\n      evidence:\n        - {kind: tests, at_least: 5}\n",
            "Rule 'r' (line 2), evidence: unknown key(s) at_least.",
        ),
    ],
    ids=["rule", "require", "stage", "evidence"],
)
def test_unknown_keys_are_refused(rule, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n" + rule))

    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("require", "message"),
    [
        (
            "stages:\n        - {key: s, approvers: friends}",
            "Rule 'r' (line 2): stage approvers must be one of "
            "service_approvers, service_owners, cab, release_managers, security_approvers.",
        ),
        (
            "stages:\n        - {key: s, approvers: cab, count: 0}",
            "Rule 'r' (line 2), stage 's' count must be a positive whole number, got 0.",
        ),
        (
            "stages:\n        - {key: s, approvers: cab, order: first}",
            "Rule 'r' (line 2), stage 's' order must be a whole number of at least 0, got 'first'.",
        ),
        (
            "stages:\n        - {key: s, approvers: cab, sla_hours: -1}",
            "Rule 'r' (line 2), stage 's' sla_hours must be a positive whole number, got -1.",
        ),
        (
            "evidence:\n        - {kind: tests, max_failed: none}",
            "Rule 'r' (line 2), evidence 'tests' max_failed must be a whole number of at least 0, "
            "got 'none'.",
        ),
        (
            "approval_valid_hours: 1.5",
            "Rule 'r' (line 2), approval_valid_hours must be a positive whole number, got 1.5.",
        ),
    ],
    ids=["approvers", "count", "order", "sla", "max-failed", "validity"],
)
def test_invalid_requirement_values_are_refused(require, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules(f"  - id: r\n    require:\n      {require}\n"))

    assert str(excinfo.value) == message


def test_duplicate_rule_ids_are_refused():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n", "  - id: r\n"))

    assert str(excinfo.value) == "Rule 'r' (line 3): the id is used twice."


STAGE = "{key: s, name: S, approvers: service_owners, count: 2}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            rules("  - id: a\n") + rules("  - id: b\n"),
            "'rules' is given twice in one mapping (line 1, then line 3)",
            id="a second rules section",
        ),
        pytest.param(
            rules(f"  - id: a\n    require:\n      stages: [{STAGE}]\n      stages: []\n"),
            "'stages' is given twice in one mapping (line 4, then line 5)",
            id="a second stages list",
        ),
        pytest.param(
            rules(
                "  - id: a\n    require:\n      stages:\n        - key: s\n          name: S\n"
                "          approvers: service_owners\n          count: 2\n          count: 1\n"
            ),
            "'count' is given twice in one mapping (line 8, then line 9)",
            id="a stage's count",
        ),
        pytest.param(
            rules("  - id: a\n    when: environment.risk == 'high'\n    when: 'false'\n"),
            "'when' is given twice in one mapping (line 3, then line 4)",
            id="a rule's condition",
        ),
        pytest.param(
            "slas:\n  - {id: fast, due_hours: 4, due_hours: 400}\n" + rules("  - id: a\n"),
            "'due_hours' is given twice in one mapping (line 2, then line 2)",
            id="an SLA",
        ),
        pytest.param(
            "base: &b {count: 2, count: 1}\n" + rules("  - id: a\n"),
            "'count' is given twice in one mapping (line 1, then line 1)",
            id="behind an anchor",
        ),
    ],
)
def test_a_key_given_twice_is_refused_rather_than_silently_dropped(source, message):
    """YAML keeps a repeated key's last value: what a reviewer reads would not be what applies."""
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == (
        f"{message}: YAML would keep only the second and silently drop the first. Give it once."
    )
    assert excinfo.value.line == int(message.split("then line ")[1].rstrip(")"))


def test_the_first_repeated_key_in_the_document_is_the_one_named():
    source = rules(
        "  - id: a\n    when: 'true'\n    when: 'true'\n",
        "  - id: b\n    description: x\n    description: y\n",
    )
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert (excinfo.value.line, excinfo.value.column) == (4, 5)


def test_a_repeated_key_is_found_beside_a_stage_shared_through_an_anchor():
    """A node met again through its alias is skipped, and the walk goes on to the rest."""
    source = rules(
        "  - id: a\n    when: 'true'\n    when: 'false'\n",
        f"  - id: b\n    require:\n      stages: [&owners {STAGE}]\n",
        "  - id: c\n    require:\n      stages: [*owners]\n",
    )
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value).startswith(
        "'when' is given twice in one mapping (line 3, then line 4)"
    )


def test_aliases_repeated_many_times_are_checked_quickly():
    """Each node is walked once, however many aliases name it (a 'billion laughs' document)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    with pytest.raises(PolicyError) as excinfo:
        engine.parse("\n".join(lines) + "\n" + rules("  - id: a\n"))

    assert "unknown key" in str(excinfo.value)  # the walk finished; a0... are not policy keys


def test_a_rule_the_yaml_cannot_place_is_named_without_a_line():
    """Rules brought in by a merge key (`<<`) have no place of their own in the document."""
    with pytest.raises(PolicyError) as excinfo:
        engine.parse("<<: {rules: [{description: no id}]}\n")

    assert str(excinfo.value) == "Rule 1 needs an 'id'."


def test_a_bare_yaml_boolean_condition_means_what_it_says():
    source = rules("  - id: always\n    when: true\n", "  - id: never\n    when: false\n")

    plan = engine.evaluate(source, context())

    assert matched(plan) == ["always"]


# --- Failing closed at run time ------------------------------------------------------------------


def test_a_condition_on_missing_data_fails_closed():
    source = rules('  - id: needs-scan\n    when: evidence.security.status == "passed"\n')

    plan = engine.evaluate(source, context(evidence={}))

    assert plan.errors == ["Policy rule 'needs-scan' could not be evaluated: KeyError('security')"]
    assert matched(plan) == []
    assert plan.stages == []


def test_a_division_by_zero_in_a_condition_fails_closed():
    source = rules(
        "  - id: failure-rate\n    when: evidence.tests.failed * 100 / evidence.tests.passed > 5\n",
        '  - id: dev\n    when: environment.risk == "low"\n',
    )

    plan = engine.evaluate(source, context("dev", evidence={"tests": {"passed": 0, "failed": 0}}))

    assert len(plan.errors) == 1
    assert plan.errors[0].startswith(
        "Policy rule 'failure-rate' could not be evaluated: ZeroDivisionError("
    )
    assert matched(plan) == ["dev"]


def test_no_matching_rule_is_an_error():
    plan = engine.evaluate(
        rules('  - id: never\n    when: change.type == "unheard-of"\n'), context()
    )

    assert plan.errors == ["No policy rule applies to this release; an administrator must add one."]


# --- Publishing versions -------------------------------------------------------------------------


def test_publishing_a_broken_policy_changes_nothing(policy, approver):
    default = Policy.objects.get(slug="default")
    before = factories.state_counts()

    with pytest.raises(InvalidPolicy) as excinfo:
        publish_policy(
            policy_obj=default,
            source=rules("  - id: x\n    when: (\n"),
            actor=approver,
            comment="oops",
        )

    assert excinfo.value.code == "invalid_policy"
    assert excinfo.value.message.startswith("Rule 'x' (line 2): CEL syntax error in 'when'")
    assert excinfo.value.fields == {"source": [excinfo.value.message]}
    assert factories.state_counts() == before
    default.refresh_from_db()
    assert (default.version, default.source) == (1, DEFAULT)
    assert active_policy_version().number == 1


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (
            "{key: s, approvers: cab, count: 40000}",
            "Rule 'x' (line 2), stage 's' count must be at most 1000, got 40000.",
        ),
        (
            "{key: " + "k" * 51 + ", approvers: cab}",
            f"Rule 'x' (line 2), stage '{'k' * 51}': the key is longer than 50 characters.",
        ),
        (
            "{key: s, approvers: cab, sla_hours: 100000000000}",
            "Rule 'x' (line 2), stage 's' sla_hours must be at most 8760, got 100000000000.",
        ),
    ],
    ids=["count", "key", "hours"],
)
def test_publishing_refuses_a_stage_that_no_release_could_be_planned_with(
    policy, approver, org, service, staging, pipeline_bot, stage, message
):
    """These had published, and then every release the rule applied to failed to be planned:
    a count and a key too large for the request's stage, a due time past any date."""
    before = factories.state_counts()

    with pytest.raises(InvalidPolicy) as excinfo:
        publish_policy(
            policy_obj=Policy.objects.get(slug="default"),
            source=rules(f"  - id: x\n    require:\n      stages: [{stage}]\n"),
            actor=approver,
        )

    assert excinfo.value.message == message
    assert factories.state_counts() == before
    release, _ = services.request_approval(
        data=factories.release_input(service, staging), actor=pipeline_bot
    )
    assert release.approval.status == ApprovalRequest.Status.PENDING


def test_publishing_a_valid_policy_bumps_the_version_and_writes_the_ledger(policy, approver):
    default = Policy.objects.get(slug="default")
    source = DEFAULT + "\n# reviewed\n"
    last_seq = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()

    version = publish_policy(policy_obj=default, source=source, actor=approver, comment="review")

    checksum = hashlib.sha256(source.encode()).hexdigest()
    assert (version.number, version.checksum, version.created_by) == (2, checksum, approver)
    assert (default.version, default.source) == (2, source)
    assert list(PolicyVersion.objects.values_list("number", flat=True)) == [2, 1]
    assert active_policy_version() == version
    entry = LedgerEntry.objects.get(seq__gt=last_seq)
    assert (entry.kind, entry.subject, entry.actor) == (
        "policy.published",
        f"policy:{default.pk}",
        "alice",
    )
    assert entry.payload == {
        "policy": "default",
        "version": 2,
        "checksum": checksum,
        "comment": "review",
    }


def _publish(source: str) -> None:
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=source, actor=None)


def test_gate_blocks_a_release_whose_policy_cannot_be_evaluated(
    org, service, production, pipeline_bot, api
):
    _publish(rules('  - id: needs-scan\n    when: evidence.security.status == "passed"\n'))
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )

    gate = api(pipeline_bot).get(f"/api/v1/releases/{release.pk}/gate").json()

    assert gate["status"] == "blocked"
    assert gate["reasons"] == [
        "Policy rule 'needs-scan' could not be evaluated: KeyError('security')"
    ]
    assert gate["stages"] == []
    assert ApprovalRequest.objects.get(release=release).status == "pending"


def test_gate_blocks_a_release_no_rule_applies_to(org, service, production, pipeline_bot, api):
    _publish(rules('  - id: dev-only\n    when: environment.risk == "low"\n'))
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )

    gate = api(pipeline_bot).get(f"/api/v1/releases/{release.pk}/gate").json()

    assert gate["status"] == "blocked"
    assert gate["reasons"] == [
        "No policy rule applies to this release; an administrator must add one."
    ]


def test_a_failing_condition_answers_the_pipeline_instead_of_crashing(org, pipeline_bot, api):
    _publish(
        rules(
            "  - id: failure-rate\n"
            "    when: evidence.tests.failed * 100 / evidence.tests.passed > 5\n"
        )
    )
    body = factories.release_body(
        evidence=[{"kind": "tests", "status": "passed", "summary": {"passed": 0, "failed": 0}}]
    )

    response = api(pipeline_bot).post("/api/v1/releases/", body)

    assert response.status_code == 201
    assert response.json()["gate"]["status"] == "blocked"
    assert response.json()["gate"]["reasons"][0].startswith(
        "Policy rule 'failure-rate' could not be evaluated: ZeroDivisionError("
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('dual_control: "no"', "dual_control must be true or false"),
        ("retro_review: 1", "retro_review must be true or false"),
    ],
)
def test_non_boolean_flags_are_refused(snippet, message):
    source = f"""
rules:
  - id: flags
    when: "true"
    require:
      {snippet}
"""
    with pytest.raises(PolicyError, match=message):
        engine.parse(source)


def test_non_boolean_step_up_is_refused():
    source = """
rules:
  - id: stepup
    require:
      stages:
        - {key: service, approvers: service_approvers, step_up: "yes"}
"""
    with pytest.raises(PolicyError, match="step_up must be true or false"):
        engine.parse(source)


def test_every_approver_source_a_policy_may_name_is_one_authority_can_answer_for():
    """The engine validates stage sources, authority decides who holds them: the two lists are
    kept in their own layers (the engine imports nothing from governance), so this holds them
    together."""
    from governance.authority.selectors import STAGE_SOURCES

    assert sorted(STAGE_SOURCES) == sorted(engine.APPROVER_SOURCES)
