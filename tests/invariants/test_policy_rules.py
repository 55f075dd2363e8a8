"""The policy engine's edges (`governance/policy/engine.py`) that mutation testing showed no test
pinned down; each test names the rule it holds. Pure functions: no database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from governance.policy import engine
from governance.policy.engine import (
    DEFAULT_CONTROLS,
    CompensatingControl,
    EmergencySettings,
    EvidenceRequirement,
    Plan,
    PolicyError,
    StageRequirement,
)
from tests.governance.policy.test_policy import context, rules


def stage(**values) -> StageRequirement:
    defaults = {"key": "s", "name": "S", "approvers": "cab", "count": 1, "order": 10}
    return StageRequirement(**{**defaults, "step_up": False, "sla_hours": None, **values})


def one_stage(body: str) -> str:
    """A document with one always-matching rule asking for the stage written as a flow map."""
    return rules(f"  - id: r\n    require:\n      stages:\n        - {body}\n")


def emergency(section: str) -> str:
    return "rules:\n  - id: r\nemergency:\n" + section


# --- Reading the document: every refusal names the rule and the place ---------------------------


@pytest.mark.parametrize(
    ("second_rule", "message"),
    [
        ("  - just-text\n", "Rule 2 (line 3) must be a mapping."),
        ("  - when: 'true'\n", "Rule 2 (line 3) needs an 'id'."),
        ("  - id: '  '\n", "Rule 2 (line 3) needs an 'id'."),
    ],
    ids=["not-a-mapping", "no-id", "blank-id"],
)
def test_a_rule_without_a_usable_id_is_named_by_its_position_and_line(second_rule, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: a\n", second_rule))

    assert str(excinfo.value) == message


def test_every_unknown_variable_of_a_condition_is_named():
    source = rules('  - id: typos\n    when: enviroment.risk == "high" && servce.tier == 1\n')

    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value).startswith(
        "Rule 'typos' (line 2): 'when' uses unknown variable(s) enviroment, servce; "
    )


def test_a_cel_error_in_a_folded_condition_names_the_yaml_line():
    """`when: >` starts its text on the next line, like `when: |`."""
    source = rules("  - id: folded\n    when: >\n      service.tier ==\n")

    with pytest.raises(
        PolicyError, match=r"^Rule 'folded' \(line 2\): CEL syntax error in 'when' at line 4, "
    ):
        engine.parse(source)


# A merge key (`<<`) brings the rules in: YAML gives them no place of their own in the document.
MERGED_RULES = """<<:
  rules:
    - id: b
    - id: c
      when: service.tier ==
"""


def test_rules_brought_in_by_a_merge_key_apply():
    source = MERGED_RULES.replace("      when: service.tier ==\n", "")

    assert [rule.id for rule in engine.parse(source)] == ["b", "c"]


def test_a_cel_error_the_yaml_cannot_place_counts_lines_from_the_condition():
    """The message still names the rule, and the line within the condition, but no line of the
    document it cannot know."""
    with pytest.raises(PolicyError, match=r"^Rule 'c': CEL syntax error in 'when' at line 1, "):
        engine.parse(MERGED_RULES)


def test_every_unknown_key_of_a_rule_is_named():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n    whenn: 'true'\n    requires: {}\n"))

    assert str(excinfo.value) == "Rule 'r' (line 2): unknown key(s) requires, whenn."


def test_require_must_be_a_mapping():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n    require: [stages]\n"))

    assert str(excinfo.value) == "Rule 'r' (line 2): 'require' must be a mapping."


def test_the_plan_explains_each_matched_rule_by_id_description_condition_and_values():
    """The release page's "explain" view shows these, as written in the policy, with the
    context values the condition read."""
    source = rules(
        "  - id: prod\n    description: Production needs care\n"
        '    when: environment.risk == "high"\n',
        "  - id: bare\n",
    )

    plan = engine.evaluate(source, context())

    assert plan.matched_rules == [
        {
            "id": "prod",
            "description": "Production needs care",
            "when": 'environment.risk == "high"',
            "values": {"environment.risk": "high"},
        },
        {"id": "bare", "description": "", "when": "true", "values": {}},
    ]


def test_a_policy_version_s_checksum_is_the_sha256_of_its_text():
    assert engine.checksum("rules: []\n") == (
        "e0dfa70eb69d47fe9cb2be8a4fcd53e74cf7fe26fcbb1f06912b57a9c028e4e0"
    )


# --- When a stage reminds and escalates ----------------------------------------------------------


def test_a_stage_reminds_halfway_to_its_sla_and_escalates_at_it_by_default():
    requirement = stage(sla_hours=8)

    assert requirement.reminder_delay() == timedelta(hours=4)
    assert requirement.escalation_delay() == timedelta(hours=8)


def test_a_stage_without_an_sla_or_times_never_reminds_nor_escalates():
    requirement = stage(sla_hours=None)

    assert requirement.reminder_delay() is None
    assert requirement.escalation_delay() is None


def test_a_policy_s_remind_and_escalate_hours_replace_the_sla_defaults():
    requirement = stage(sla_hours=8, remind_hours=1, escalate_hours=3)

    assert requirement.reminder_delay() == timedelta(hours=1)
    assert requirement.escalation_delay() == timedelta(hours=3)


def test_remind_and_escalate_hours_work_without_an_sla():
    requirement = stage(sla_hours=None, remind_hours=2, escalate_hours=5)

    assert requirement.reminder_delay() == timedelta(hours=2)
    assert requirement.escalation_delay() == timedelta(hours=5)


def test_a_stage_s_remind_and_escalate_hours_reach_the_plan():
    plan = engine.evaluate(
        one_stage("{key: s, approvers: cab, sla_hours: 8, remind_hours: 2, escalate_hours: 6}"),
        context(),
    )

    assert [(s.sla_hours, s.remind_hours, s.escalate_hours) for s in plan.stages] == [(8, 2, 6)]


def test_the_earliest_reminder_and_escalation_win_when_rules_share_a_stage():
    source = rules(
        "  - id: a\n    require:\n      stages:\n"
        "        - {key: s, approvers: cab, remind_hours: 3, escalate_hours: 4}\n",
        "  - id: b\n    require:\n      stages:\n"
        "        - {key: s, approvers: cab, remind_hours: 1, escalate_hours: 9}\n",
        "  - id: c\n    require:\n      stages:\n        - {key: s, approvers: cab}\n",
    )

    plan = engine.evaluate(source, context())

    assert [(s.remind_hours, s.escalate_hours, s.rules) for s in plan.stages] == [
        (1, 4, ["a", "b", "c"])
    ]


def test_a_reminder_time_from_one_rule_survives_a_rule_without_one():
    source = rules(
        "  - id: a\n    require:\n      stages:\n        - {key: s, approvers: cab}\n",
        "  - id: b\n    require:\n      stages:\n"
        "        - {key: s, approvers: cab, remind_hours: 2}\n",
    )

    plan = engine.evaluate(source, context())

    assert [(s.remind_hours, s.escalate_hours) for s in plan.stages] == [(2, None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "{key: s, approvers: cab, remind_hours: 4, escalate_hours: 4}",
            "Rule 'r' (line 2), stage 's': remind_hours must come before escalate_hours.",
        ),
        (
            "{key: s, approvers: cab, remind_hours: 5, escalate_hours: 4}",
            "Rule 'r' (line 2), stage 's': remind_hours must come before escalate_hours.",
        ),
        (
            "{key: s, approvers: cab, remind_hours: 0}",
            "Rule 'r' (line 2), stage 's' remind_hours must be a positive whole number, got 0.",
        ),
        (
            "{key: s, approvers: cab, escalate_hours: soon}",
            "Rule 'r' (line 2), stage 's' escalate_hours must be a positive whole number, "
            "got 'soon'.",
        ),
    ],
    ids=["equal", "after", "zero", "not-a-number"],
)
def test_a_reminder_must_be_a_positive_time_before_the_escalation(body, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(one_stage(body))

    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("[cab]", "Rule 'r' (line 2): each stage must be a mapping."),
        ("[{approvers: cab}]", "Rule 'r' (line 2): each stage needs a 'key' (a name)."),
        ("[{key: '', approvers: cab}]", "Rule 'r' (line 2): each stage needs a 'key' (a name)."),
    ],
    ids=["not-a-mapping", "no-key", "empty-key"],
)
def test_a_stage_must_be_a_mapping_with_a_key(stages, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules(f"  - id: r\n    require:\n      stages: {stages}\n"))

    assert str(excinfo.value) == message


@pytest.mark.parametrize("evidence", ["[tests]", "[{status: passed}]"], ids=["bare", "no-kind"])
def test_an_evidence_requirement_must_be_a_mapping_with_a_kind(evidence):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules(f"  - id: r\n    require:\n      evidence: {evidence}\n"))

    assert str(excinfo.value) == "Rule 'r' (line 2): each evidence requirement needs a 'kind'."


def test_a_reminder_an_hour_before_the_escalation_is_accepted():
    (rule,) = engine.parse(
        one_stage("{key: s, approvers: cab, remind_hours: 3, escalate_hours: 4}")
    )

    assert rule.require["stages"][0]["remind_hours"] == 3


# --- The emergency section -----------------------------------------------------------------------


def test_without_an_emergency_section_the_defaults_apply():
    settings = engine.emergency_settings(rules("  - id: r\n"))

    assert settings == EmergencySettings(4, 72, DEFAULT_CONTROLS)
    assert [c.key for c in settings.controls] == [
        "extra_monitoring",
        "pair_deployment",
        "rollback_plan",
        "post_deploy_verification",
    ]


def test_an_emergency_section_sets_the_exception_and_post_mortem_times_and_the_controls():
    source = emergency(
        "  exception_hours: 2\n  post_mortem_hours: 24\n"
        "  controls:\n    - {key: bridge, label: Incident bridge open}\n"
    )

    settings = engine.emergency_settings(source)

    assert settings == EmergencySettings(
        2, 24, (CompensatingControl("bridge", "Incident bridge open"),)
    )


def test_a_partial_emergency_section_keeps_the_other_defaults():
    settings = engine.emergency_settings(emergency("  post_mortem_hours: 12\n"))

    assert settings == EmergencySettings(4, 12, DEFAULT_CONTROLS)
    assert engine.emergency_settings(emergency("  exception_hours: 1\n")).post_mortem_hours == 72


def test_an_empty_control_list_offers_no_controls():
    assert engine.emergency_settings(emergency("  controls: []\n")).controls == ()
    assert engine.emergency_settings(emergency("  controls:\n")).controls == ()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  - exception_hours\n", "The policy's 'emergency' section must be a mapping."),
        ("  hours: 4\n", "emergency: unknown key(s) hours."),
        (
            "  exception_hours: 0\n",
            "emergency, exception_hours must be a positive whole number, got 0.",
        ),
        (
            "  post_mortem_hours: two\n",
            "emergency, post_mortem_hours must be a positive whole number, got 'two'.",
        ),
        (
            "  controls:\n    - {key: a, label: A}\n    - {key: a, label: B}\n",
            "emergency, controls: each key may appear once.",
        ),
        (
            "  controls:\n    - {key: a}\n",
            "emergency, controls: each control needs a 'key' and a 'label'.",
        ),
        (
            "  controls:\n    - {label: A}\n",
            "emergency, controls: each control needs a 'key' and a 'label'.",
        ),
        (
            "  controls:\n    - just-a-name\n",
            "emergency, controls: each control needs a 'key' and a 'label'.",
        ),
        (
            "  controls:\n    - {key: a, label: A, owner: ops}\n",
            "emergency, control 'a': unknown key(s) owner.",
        ),
    ],
    ids=[
        "not-a-mapping",
        "unknown-key",
        "zero-hours",
        "not-a-number",
        "duplicate-control",
        "no-label",
        "no-key",
        "bare-control",
        "unknown-control-key",
    ],
)
def test_a_bad_emergency_section_is_refused_saying_what_is_wrong(section, message):
    with pytest.raises(PolicyError) as excinfo:
        engine.emergency_settings(emergency(section))

    assert str(excinfo.value) == message


def test_publishing_refuses_a_policy_whose_emergency_section_is_bad():
    """`parse` is what publishing runs: a bad emergency section must not reach the live policy."""
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(emergency("  exception_hours: -4\n"))

    assert str(excinfo.value) == (
        "emergency, exception_hours must be a positive whole number, got -4."
    )


def test_a_policy_with_an_unknown_top_level_section_is_refused():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse("rules:\n  - id: r\nemergencies:\n  exception_hours: 2\n")

    assert str(excinfo.value) == "The policy: unknown key(s) emergencies."


def test_a_document_that_is_not_a_mapping_has_the_default_emergency_settings():
    assert engine.emergency_settings("- just\n- a list\n") == EmergencySettings()


def test_emergency_controls_that_are_not_a_list_are_refused_in_those_words():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n") + "emergency:\n  controls: four eyes\n")

    assert str(excinfo.value) == "emergency, controls must be a list, got 'four eyes'."


def test_invalid_yaml_is_refused_with_its_place():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(rules("  - id: r\n    when: [environment\n"))

    message = str(excinfo.value)
    assert message.startswith("The policy is not valid YAML: while parsing a flow sequence")
    assert "line 3, column 11" in message  # YAML's own words, with the place of the `[`
    assert (excinfo.value.line, excinfo.value.column) == (4, 1)


def test_characters_yaml_cannot_read_are_refused_in_its_words():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse("rules: []\x07\n")

    assert str(excinfo.value).startswith(
        "The policy is not valid YAML: unacceptable character #x0007"
    )


def test_lists_nested_too_deeply_for_the_parser_are_refused_at_line_1():
    with pytest.raises(PolicyError) as excinfo:
        engine.parse("rules: " + "[" * 5000)

    assert str(excinfo.value) == "The policy nests lists or mappings too deeply."
    assert excinfo.value.line == 1


@pytest.mark.parametrize(
    "source",
    ["- id: r\n", "slas: []\n", "rules: {id: r}\n", "rules: r\n", "42\n"],
    ids=["a list", "no rules", "rules a mapping", "rules a word", "a number"],
)
def test_a_document_without_a_list_of_rules_is_refused_at_line_1(source):
    with pytest.raises(PolicyError) as excinfo:
        engine.parse(source)

    assert str(excinfo.value) == "The policy must be a mapping with a list under 'rules'."
    assert excinfo.value.line == 1


def test_emergency_settings_of_invalid_yaml_say_so():
    with pytest.raises(PolicyError) as excinfo:
        engine.emergency_settings("rules: [\n")

    assert str(excinfo.value).startswith("The policy is not valid YAML: ")


def test_a_chosen_control_shows_the_policy_s_label_or_its_key_once_dropped():
    settings = EmergencySettings()

    assert (
        settings.control_label("pair_deployment") == "Pair deployment (a second engineer watches)"
    )
    assert settings.control_label("retired_control") == "retired_control"


# --- What a plan says and keeps ------------------------------------------------------------------


def test_an_evidence_requirement_says_its_status_and_failure_limit():
    assert EvidenceRequirement("tests", "passed", 0).describe() == (
        "tests evidence with status 'passed' and at most 0 failed"
    )
    assert EvidenceRequirement("scan", "clean", None).describe() == (
        "scan evidence with status 'clean'"
    )


def test_a_stage_names_its_approvers_in_words():
    assert stage(approvers="service_owners").approvers_label == "owners of the service (CMDB)"


def test_a_frozen_plan_reads_back_exactly():
    plan = engine.evaluate(
        rules(
            "  - id: r\n    description: all of it\n    require:\n"
            "      stages:\n        - {key: s, approvers: cab, teams: each, remind_hours: 2}\n"
            "      evidence:\n        - {kind: tests, status: passed, max_failed: 1}\n"
            "      approval_valid_hours: 6\n      dual_control: true\n"
            "      retro_review: true\n      itsm_change: true\n"
        ),
        context(),
    )

    assert Plan.from_dict(plan.to_dict()) == plan
    assert plan.itsm_change is True
    assert plan.retro_review is True


def test_a_stage_the_policy_says_little_about_gets_its_defaults_and_a_readable_name():
    plan = engine.evaluate(
        one_stage("{key: release_check, approvers: cab, teams: primary}"), context()
    )

    assert plan.stages == [
        StageRequirement(
            key="release_check",
            name="Release check",
            approvers="cab",
            count=1,
            order=100,
            step_up=False,
            sla_hours=None,
            rules=["r"],
            teams="primary",
            remind_hours=None,
            escalate_hours=None,
        )
    ]


def test_one_approval_from_each_team_is_stricter_than_the_primary_team_s():
    """Strictness follows TEAM_RULES' order (any < primary < each), not the alphabet."""
    source = rules(
        "  - id: a\n    require:\n      stages:\n        - {key: s, approvers: cab, teams: each}\n",
        "  - id: b\n    require:\n      stages:\n"
        "        - {key: s, approvers: cab, teams: primary}\n",
    )

    assert [s.teams for s in engine.evaluate(source, context()).stages] == ["each"]


def test_evidence_keeps_the_status_the_policy_asks_for_and_no_limit_unless_one_is_set():
    source = rules(
        "  - id: a\n    require:\n      evidence:\n        - {kind: scan, status: clean}\n",
        "  - id: b\n    require:\n      evidence:\n        - {kind: scan, status: clean}\n",
    )

    plan = engine.evaluate(source, context())

    assert plan.evidence == [EvidenceRequirement("scan", "clean", None, ["a", "b"])]


def test_evidence_requirements_are_listed_by_kind_whatever_the_rule_order():
    source = rules(
        "  - id: a\n    require:\n      evidence:\n        - {kind: tests}\n",
        "  - id: b\n    require:\n      evidence:\n        - {kind: scan}\n",
    )

    plan = engine.evaluate(source, context())

    assert [(e.kind, e.rules) for e in plan.evidence] == [("scan", ["b"]), ("tests", ["a"])]


def test_a_frozen_plan_keeps_why_it_blocks():
    plan = engine.evaluate(
        rules("  - id: broken\n    when: evidence.scan.status == 1\n"), context()
    )

    assert Plan.from_dict(plan.to_dict()).errors == [
        "Policy rule 'broken' could not be evaluated: KeyError('scan')"
    ]


def test_a_plan_frozen_before_a_field_existed_reads_back_with_its_default():
    assert Plan.from_dict({}) == Plan()
