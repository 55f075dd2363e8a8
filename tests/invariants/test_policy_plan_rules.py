"""The policy engine's newer requirements (`governance/policy/engine.py`): service levels, blocks
that quote the release, post-deploy verification, parallel stages and where a stage's approvers
come from. Each test pins an edge that mutation testing showed no test held. Pure functions: no
database."""

from __future__ import annotations

import pytest

from governance.policy import engine
from governance.policy.engine import PolicyError
from tests.governance.policy.test_policy import context, rules


def with_sla(sla: str, *stages: str) -> str:
    """A document with one service level, `sla`, and one always-matching rule asking for it and
    for the stages written as flow maps."""
    listed = "".join(f"        - {body}\n" for body in stages)
    return f"slas:\n  - {sla}\n" + rules(
        f"  - id: r\n    require:\n      sla: gold\n      stages:\n{listed}"
    )


def by_key(plan: engine.Plan) -> dict[str, engine.StageRequirement]:
    return {stage.key: stage for stage in plan.stages}


# --- Service levels: an SLA only ever tightens ----------------------------------------------------


def test_an_sla_s_approver_count_applies_to_the_service_s_own_stages_only():
    source = with_sla(
        "{id: gold, min_approvers: 3}",
        "{key: owners, approvers: service_owners}",
        "{key: approvers, approvers: service_approvers, order: 20}",
        "{key: cab, approvers: cab, order: 30}",
    )

    stages = by_key(engine.evaluate(source, context()))

    assert (stages["owners"].count, stages["approvers"].count, stages["cab"].count) == (3, 3, 1)


def test_an_sla_without_an_approver_count_leaves_every_count_alone():
    source = with_sla(
        "{id: gold, due_hours: 4}",
        "{key: owners, approvers: service_owners, count: 2}",
    )

    owners = engine.evaluate(source, context()).stages[0]

    assert (owners.count, owners.sla_hours) == (2, 4)
    assert owners.rules == ["r", "r (SLA gold)"]


def test_a_reminder_no_earlier_than_the_sla_s_escalation_falls_back_to_halfway():
    source = with_sla(
        "{id: gold, escalate_hours: 4}",
        "{key: at, approvers: cab, remind_hours: 4, escalate_hours: 8}",
        "{key: before, approvers: cab, remind_hours: 3, escalate_hours: 8, order: 20}",
    )

    stages = by_key(engine.evaluate(source, context()))

    assert (stages["at"].remind_hours, stages["at"].escalate_hours) == (None, 4)
    assert (stages["before"].remind_hours, stages["before"].escalate_hours) == (3, 4)


def test_an_sla_s_escalation_target_fills_in_but_never_replaces_a_stage_s_own():
    source = with_sla(
        "{id: gold, escalate_to: platform}",
        "{key: own, approvers: cab, escalate_to: security}",
        "{key: none, approvers: service_owners, order: 20}",
    )

    stages = by_key(engine.evaluate(source, context()))

    assert (stages["own"].escalate_to, stages["none"].escalate_to) == ("security", "platform")


def test_an_sla_without_an_escalation_target_leaves_the_stage_without_one():
    source = with_sla("{id: gold, due_hours: 4}", "{key: cab, approvers: cab}")

    assert engine.evaluate(source, context()).stages[0].escalate_to == ""


# --- Blocks quote the release's values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("placeholder", "plan_values", "shown"),
    [
        ("{plan.world_open}", {"world_open": []}, "none"),
        ("{plan.world_open}", {"world_open": ["sg.web", "sg.ssh"]}, "sg.web, sg.ssh"),
        ("{plan.deletes}", {"deletes": 3}, "3"),
        ("{plan.deletes}", {"deletes": 0}, "0"),
        ("{plan.missing}", {}, "?"),
    ],
    ids=["empty-list", "list", "number", "zero", "absent"],
)
def test_a_block_shows_each_placeholder_as_the_release_s_value(placeholder, plan_values, shown):
    source = rules(f"  - id: r\n    require:\n      block: 'Seen: {placeholder}'\n")
    release = context()
    release["plan"].update(plan_values)

    plan = engine.evaluate(source, release)

    assert plan.blocks == [f"Seen: {shown} (policy rule r)"]


# --- Post-deploy verification: a window of at most a day, polled inside it ------------------------


def verification(value: str) -> str:
    return rules(f"  - id: r\n    require:\n      verification: {value}\n")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", " must be a mapping such as {minutes: 30, interval_seconds: 60}."),
        ("{minutes: 30, every: 5}", ": unknown key(s) every."),
        ("{interval_seconds: 60}", " needs 'minutes': how long after a deployment to watch it."),
        ("{minutes: 0}", ", minutes must be a positive whole number, got 0."),
        ("{minutes: true}", ", minutes must be a positive whole number, got True."),
        ("{minutes: 1441}", ", minutes must be at most 1440 (a day), got 1441."),
        (
            "{minutes: 1, interval_seconds: 9}",
            ", interval_seconds must be a whole number of at least 10, got 9.",
        ),
        (
            "{minutes: 1, interval_seconds: 61}",
            ", interval_seconds (61) is longer than the window (1 minutes): the health would "
            "never be checked.",
        ),
    ],
    ids=[
        "not-a-mapping",
        "unknown",
        "no-minutes",
        "zero",
        "boolean",
        "over-a-day",
        "too-often",
        "outside-the-window",
    ],
)
def test_a_bad_verification_window_is_refused_saying_what_is_wrong(value, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(verification(value))

    assert str(excinfo.value) == "Rule 'r' (line 2), verification" + message


@pytest.mark.parametrize(
    ("value", "window"),
    [
        ("{minutes: 1440}", (1440, 60)),
        ("{minutes: 1, interval_seconds: 60}", (1, 60)),
        ("{minutes: 1, interval_seconds: 10}", (1, 10)),
    ],
    ids=["a-whole-day", "once-in-the-window", "most-often"],
)
def test_a_verification_window_at_its_limits_is_accepted(value, window):
    plan = engine.evaluate(verification(value), context())

    assert plan.verification == {
        "minutes": window[0],
        "interval_seconds": window[1],
        "rules": ["r"],
    }


def test_verification_windows_combine_to_the_longest_window_polled_most_often():
    source = rules(
        "  - id: long\n    require:\n      verification: {minutes: 60, interval_seconds: 120}\n",
        "  - id: often\n    require:\n      verification: {minutes: 15, interval_seconds: 30}\n",
        "  - id: plain\n    require:\n      verification: {minutes: 30}\n",
    )

    plan = engine.evaluate(source, context())

    assert plan.verification == {
        "minutes": 60,
        "interval_seconds": 30,
        "rules": ["long", "often", "plain"],
    }


# --- Frozen plans: every field reads back as it was written ---------------------------------------


def test_a_frozen_plan_with_every_field_set_reads_back_exactly():
    plan = engine.Plan(
        stages=[
            engine.StageRequirement(
                key="cab",
                name="CAB",
                approvers="cab",
                count=2,
                order=20,
                step_up=True,
                sla_hours=8,
                rules=["r"],
                teams="each",
                remind_hours=2,
                escalate_hours=6,
                escalate_to="platform",
            )
        ],
        evidence=[engine.EvidenceRequirement("tests", "passed", 0, ["r"], min_passed=10)],
        approval_valid_hours=6,
        dual_control=True,
        retro_review=True,
        itsm_change=True,
        matched_rules=[{"id": "r", "description": "", "when": "true", "values": {}}],
        errors=["broken"],
        blocks=["Opens ingress to the world (policy rule r)"],
        checks={"itsm_authorised": ["r"]},
        checkpoints={"SOX": [{"kind": "stage", "key": "cab"}]},
        slas=[{"id": "gold", "rule": "r"}],
        standard_change={"template": "db-patch", "name": "Database patch"},
        notes=["A standard change template did not apply."],
        verification={"minutes": 15, "interval_seconds": 60, "rules": ["r"]},
    )

    assert engine.Plan.from_dict(plan.to_dict()) == plan


def test_stages_sharing_an_order_open_together_in_order_of_their_order():
    def at(key: str, order: int) -> engine.StageRequirement:
        return engine.StageRequirement(key, key, "cab", 1, order, False, None)

    plan = engine.Plan(stages=[at("cab", 30), at("owners", 10), at("security", 10), at("sre", 20)])

    groups = [[stage.key for stage in group] for group in plan.stage_groups()]

    assert groups == [["owners", "security"], ["sre"], ["cab"]]


# --- Reading a rule's requirements: every refusal in its words, at the rule's place -------------


def require(body: str) -> str:
    return rules("  - id: r\n    require:\n" + body)


def stage_with(values: str) -> str:
    return require(f"      stages:\n        - {{key: s, approvers: cab, {values}}}\n")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            require("      stages:\n        - {key: s, approvers: bosses}\n"),
            ": stage approvers must be one of service_approvers, service_owners, cab, "
            "release_managers, security_approvers.",
        ),
        (
            require("      stages:\n        - {approvers: cab}\n"),
            ": each stage needs a 'key' (a name).",
        ),
        (
            require("      stages:\n        - {key: '', approvers: cab}\n"),
            ": each stage needs a 'key' (a name).",
        ),
        (require("      stages: 5\n"), ": 'stages' must be a list, got 5."),
        (require("      evidence: 5\n"), ": 'evidence' must be a list, got 5."),
        (stage_with("colour: red"), ", stage: unknown key(s) colour."),
        (stage_with("count: 0"), ", stage 's' count must be a positive whole number, got 0."),
        (
            stage_with("order: -1"),
            ", stage 's' order must be a whole number of at least 0, got -1.",
        ),
        (
            stage_with("sla_hours: 0"),
            ", stage 's' sla_hours must be a positive whole number, got 0.",
        ),
        (
            stage_with("remind_hours: 0"),
            ", stage 's' remind_hours must be a positive whole number, got 0.",
        ),
        (
            stage_with("escalate_hours: 0"),
            ", stage 's' escalate_hours must be a positive whole number, got 0.",
        ),
        (stage_with("step_up: 'yes'"), ", stage 's' step_up must be true or false, got 'yes'."),
        (stage_with("count: 1001"), ", stage 's' count must be at most 1000, got 1001."),
        (stage_with("order: 10001"), ", stage 's' order must be at most 10000, got 10001."),
        (
            stage_with("remind_hours: 8761"),
            ", stage 's' remind_hours must be at most 8760, got 8761.",
        ),
        (
            stage_with("name: [Security]"),
            ", stage 's': 'name' must be text of at most 100 characters.",
        ),
        (
            stage_with("name: " + "n" * 101),
            ", stage 's': 'name' must be text of at most 100 characters.",
        ),
        (
            stage_with("escalate_to: [platform]"),
            ", stage 's': 'escalate_to' must be a team's slug.",
        ),
        (stage_with("teams: most"), ": stage 's' teams must be one of any, primary, each."),
        (
            require("      approval_valid_hours: 0\n"),
            ", approval_valid_hours must be a positive whole number, got 0.",
        ),
        (
            require("      approval_valid_hours: 8761\n"),
            ", approval_valid_hours must be at most 8760, got 8761.",
        ),
        (
            require("      dual_control: 'yes'\n"),
            ", dual_control must be true or false, got 'yes'.",
        ),
        (require("      retro_review: 1\n"), ", retro_review must be true or false, got 1."),
        (require("      itsm_change: 'no'\n"), ", itsm_change must be true or false, got 'no'."),
        (
            require("      checks: distinct_people\n"),
            ": checks must be a list of distinct_people, change_record, evidence_retained.",
        ),
        (
            require("      checks: [nope]\n"),
            ": checks must be a list of distinct_people, change_record, evidence_retained.",
        ),
        (require("      block: '  '\n"), ": 'block' must be the reason, in words."),
        (require("      block: 5\n"), ": 'block' must be the reason, in words."),
        (require("      block: 'x {nope.y}'\n"), ": 'block' names unknown variable {nope.y}."),
        (
            require("      evidence:\n        - {kind: tests, max_failed: -1}\n"),
            ", evidence 'tests' max_failed must be a whole number of at least 0, got -1.",
        ),
        (
            rules("  - id: r\n    checkpoint: [SOX]\n"),
            ": 'checkpoint' must be a name such as SOX, HIPAA or PCI.",
        ),
        (rules("  - id: r\n    require: [a]\n"), ": 'require' must be a mapping."),
        (rules("  - id: r\n    require: {colour: red}\n"), ", require: unknown key(s) colour."),
        (
            rules("  - id: r\n    require: {sla: gold}\n"),
            ": SLA 'gold' is not defined under 'slas' (none are).",
        ),
    ],
    ids=[
        "approvers",
        "no-key",
        "empty-key",
        "stages-not-a-list",
        "evidence-not-a-list",
        "stage-key",
        "count",
        "order",
        "sla-hours",
        "remind-hours",
        "escalate-hours",
        "step-up",
        "count-too-large",
        "order-too-large",
        "hours-too-long",
        "name-not-text",
        "name-too-long",
        "escalate-to-not-text",
        "teams",
        "valid-hours",
        "valid-hours-too-long",
        "dual-control",
        "retro-review",
        "itsm-change",
        "checks-not-a-list",
        "unknown-check",
        "blank-block",
        "numeric-block",
        "block-variable",
        "evidence",
        "checkpoint",
        "require-list",
        "require-key",
        "undefined-sla",
    ],
)
def test_a_bad_requirement_is_refused_naming_the_rule_and_what_is_wrong(source, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == "Rule 'r' (line 2)" + message
    assert (excinfo.value.line, excinfo.value.column) == (2, 5)


def test_a_stage_may_open_first_at_order_zero():
    assert engine.evaluate(stage_with("order: 0"), context()).stages[0].order == 0


def test_an_undefined_sla_is_refused_naming_the_slas_there_are():
    source = "slas:\n  - {id: silver}\n  - {id: bronze}\n" + rules(
        "  - id: r\n    require: {sla: gold}\n"
    )

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == (
        "Rule 'r' (line 5): SLA 'gold' is not defined under 'slas' (silver, bronze)."
    )
    assert (excinfo.value.line, excinfo.value.column) == (5, 5)


def test_a_repeated_rule_id_is_refused_at_the_second_rule():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n", "  - id: r\n"))

    assert (str(excinfo.value), excinfo.value.line) == (
        "Rule 'r' (line 3): the id is used twice.",
        3,
    )


def test_a_stage_s_approver_source_conflict_names_the_first_rule_that_drew_it():
    """Rules a and b agree on the source; c disagrees, and is told about a."""
    source = rules(
        "  - id: a\n    require:\n      stages: [{key: s, approvers: cab}]\n",
        "  - id: b\n    require:\n      stages: [{key: s, approvers: cab}]\n",
        "  - id: c\n    require:\n      stages: [{key: s, approvers: service_owners}]\n",
    )

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == (
        "Rule 'c' (line 8): stage 's' is drawn from service_owners, but rule 'a' draws it from "
        "cab; one stage has one approver source (use another stage key for the other approvers)."
    )
    assert (excinfo.value.line, excinfo.value.column) == (8, 5)


def test_rules_agreeing_on_a_stage_s_source_share_the_stage():
    source = rules(
        "  - id: a\n    require:\n      stages: [{key: s, approvers: cab}]\n",
        "  - id: b\n    require:\n      stages: [{key: s, approvers: cab, count: 2}]\n",
    )

    (stage,) = engine.evaluate(source, context()).stages

    assert (stage.count, stage.rules) == (2, ["a", "b"])


# --- Combining rules: the strictest wins, nothing is listed twice --------------------------------


@pytest.mark.parametrize(
    ("first", "second", "target"),
    [(", escalate_to: security", "", "security"), ("", ", escalate_to: platform", "platform")],
    ids=["first-rule-s", "second-rule-s"],
)
def test_a_shared_stage_keeps_the_escalation_target_one_rule_names(first, second, target):
    source = rules(
        f"  - id: a\n    require:\n      stages: [{{key: s, approvers: cab{first}}}]\n",
        f"  - id: b\n    require:\n      stages: [{{key: s, approvers: cab{second}}}]\n",
    )

    assert engine.evaluate(source, context()).stages[0].escalate_to == target


def test_a_checklist_lists_a_requirement_two_of_its_rules_ask_for_once():
    source = rules(
        "  - id: a\n    checkpoint: SOX\n    require:\n      stages: [{key: s, approvers: cab}]\n"
        "      evidence: [{kind: tests}]\n",
        "  - id: b\n    checkpoint: SOX\n    require:\n      stages: [{key: s, approvers: cab}]\n"
        "      evidence: [{kind: tests}]\n",
    )

    assert engine.evaluate(source, context()).checkpoints == {
        "SOX": [{"kind": "stage", "key": "s"}, {"kind": "evidence", "key": "tests"}]
    }


def test_built_in_checks_name_every_rule_that_asked_and_itsm_joins_the_checklist():
    source = rules(
        "  - id: a\n    checkpoint: SOX\n    require:\n      checks: [distinct_people]\n"
        "      itsm_change: true\n",
        "  - id: b\n    require:\n      checks: [distinct_people, change_record]\n",
    )

    plan = engine.evaluate(source, context())

    assert plan.checks == {"distinct_people": ["a", "b"], "change_record": ["b"]}
    assert plan.checkpoints == {
        "SOX": [
            {"kind": "check", "key": "distinct_people"},
            {"kind": "check", "key": "itsm_change"},
        ]
    }
    assert plan.itsm_change is True


def test_a_source_conflict_the_yaml_cannot_place_is_refused_without_a_place():
    """Rules brought in by a merge key (`<<`) have no place of their own in the document."""
    source = (
        "<<:\n  rules:\n"
        "    - id: a\n      require:\n        stages: [{key: s, approvers: cab}]\n"
        "    - id: b\n"
        "    - id: c\n      require:\n        stages: [{key: s, approvers: service_owners}]\n"
    )

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value).startswith(
        "Rule 'c': stage 's' is drawn from service_owners, but rule 'a' draws it from cab"
    )
    assert (excinfo.value.line, excinfo.value.column) == (None, None)


def test_a_rule_that_cannot_be_evaluated_blocks_without_hiding_the_rules_after_it():
    source = rules(
        "  - id: broken\n    when: evidence.scan.status == 'clean'\n",
        "  - id: cab\n    require:\n      stages: [{key: cab, approvers: cab}]\n",
    )

    plan = engine.evaluate(source, context())

    assert plan.errors == ["Policy rule 'broken' could not be evaluated: KeyError('scan')"]
    assert [rule["id"] for rule in plan.matched_rules] == ["cab"]
    assert [stage.key for stage in plan.stages] == ["cab"]


def test_a_rule_giving_something_but_true_or_false_blocks_without_hiding_the_rules_after_it():
    """Publishing tries each condition on a typical release; one that fails there (a key the
    typical release lacks) may still give a number for a real one."""
    source = rules(
        "  - id: odd\n    when: evidence.custom.count\n",
        "  - id: cab\n    require:\n      stages: [{key: cab, approvers: cab}]\n",
    )
    release = context()
    release["evidence"]["custom"] = {"status": "passed", "count": 2}

    plan = engine.evaluate(source, release)

    assert plan.errors == [
        "Policy rule 'odd' gave 2, not true or false; an administrator must fix its condition."
    ]
    assert [rule["id"] for rule in plan.matched_rules] == ["cab"]


def test_a_stage_at_every_limit_is_accepted():
    source = stage_with(
        "count: 1000, order: 10000, sla_hours: 8760, remind_hours: 8759, escalate_hours: 8760, "
        f"name: {'n' * 100}, escalate_to: platform"
    ).replace("key: s", "key: " + "k" * 50)

    (stage,) = engine.evaluate(source, context()).stages

    assert (stage.count, stage.order, stage.sla_hours, len(stage.name), len(stage.key)) == (
        1000,
        10000,
        8760,
        100,
        50,
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "slas:\n  - {id: gold, min_approvers: 1001}\n",
            "SLA 'gold', min_approvers must be at most 1000, got 1001.",
        ),
        (
            "slas:\n  - {id: gold, due_hours: 8761}\n",
            "SLA 'gold', due_hours must be at most 8760, got 8761.",
        ),
        (
            "emergency:\n  exception_hours: 8761\n",
            "emergency, exception_hours must be at most 8760, got 8761.",
        ),
    ],
    ids=["sla-approvers", "sla-hours", "emergency-hours"],
)
def test_service_levels_and_the_emergency_path_keep_to_the_same_limits(section, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n") + section)

    assert str(excinfo.value) == message


# --- The `slas:` section ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("slas: {id: gold}\n", "The policy's 'slas' must be a list."),
        ("slas:\n  - just-text\n", "slas: each SLA needs an 'id'."),
        ("slas:\n  - {description: x}\n", "slas: each SLA needs an 'id'."),
        ("slas:\n  - {id: '  '}\n", "slas: each SLA needs an 'id'."),
        ("slas:\n  - {id: gold, colour: red}\n", "SLA 'gold': unknown key(s) colour."),
        (
            "slas:\n  - {id: gold, due_hours: 0}\n",
            "SLA 'gold', due_hours must be a positive whole number, got 0.",
        ),
        (
            "slas:\n  - {id: gold, min_approvers: 0}\n",
            "SLA 'gold', min_approvers must be a positive whole number, got 0.",
        ),
        (
            "slas:\n  - {id: gold, escalate_hours: x}\n",
            "SLA 'gold', escalate_hours must be a positive whole number, got 'x'.",
        ),
        (
            "slas:\n  - {id: gold, escalate_to: [a]}\n",
            "SLA 'gold': 'escalate_to' must be a team's slug.",
        ),
    ],
    ids=[
        "not-a-list",
        "not-a-mapping",
        "no-id",
        "blank-id",
        "unknown-key",
        "due-hours",
        "min-approvers",
        "escalate-hours",
        "escalate-to",
    ],
)
def test_a_bad_service_level_is_refused_saying_what_is_wrong(section, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n") + section)

    assert str(excinfo.value) == message


def test_a_service_level_reads_back_with_its_defaults():
    source = rules("  - id: r\n") + "slas:\n  - {id: gold}\n  - {id: 7, description: Seven}\n"

    assert engine.sla_definitions(source) == {
        "gold": engine.Sla("gold", "", None, None, None, ""),
        "7": engine.Sla("7", "Seven", None, None, None, ""),
    }


def test_a_document_that_is_not_a_mapping_defines_no_service_level():
    assert engine.sla_definitions("- just\n- a list\n") == {}
