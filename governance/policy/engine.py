"""The policy engine: YAML documents of `when: <CEL>` → `require: {...}` rules.

Every rule whose condition holds contributes its requirements; requirements on the same stage or
evidence kind combine so that the strictest wins (more approvals, shorter SLA, fewer failures
allowed, shorter validity). The resulting plan remembers which rules produced each requirement,
which is what the release page's "explain" view shows.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import yaml

from governance.policy.conditions import (
    CONTEXT_VARIABLES,
    PolicyError,
    boolean,
    cel_context,
    child_node,
    compile_condition,
    listed,
    one_of,
    reject_unknown,
    whole_number,
)
from governance.policy.evidence import (
    EvidenceError,
    EvidenceRequirement,
    merge_requirement,
    validate_requirement,
)
from governance.policy.positions import first_repeated_key
from governance.policy.standard import standard_templates

__all__ = ["CONTEXT_VARIABLES", "EvidenceRequirement", "PolicyError"]

APPROVER_SOURCES = {
    "service_approvers": "approvers of the service",
    "service_owners": "owners of the service (CMDB)",
    "cab": "CAB members",
    # Added by a soft freeze (changes.freezes), or asked for by a policy.
    "release_managers": "release managers of the service",
    # HIPAA's privacy/security approver, PCI's security review.
    "security_approvers": "security and privacy approvers of the service",
}
_DOCUMENT_KEYS = {"rules", "emergency", "standard_changes", "slas"}
_RULE_KEYS = {"id", "description", "checkpoint", "when", "require"}
_REQUIRE_KEYS = {
    "stages",
    "evidence",
    "approval_valid_hours",
    "dual_control",
    "retro_review",
    "itsm_change",
    "checks",
    "sla",
    "block",
    "verification",
}
# Built-in checks a rule may require (`require: checks: [...]`), as its checklist shows them.
CHECKS = {
    "distinct_people": "Requester, pipeline trigger, change author and approvers are all "
    "different people",
    "change_record": "A change record is linked and still open",
    "evidence_retained": "Evidence is attached and retained with the release (never edited; "
    "exported in its evidence pack)",
}
_SLA_KEYS = {"id", "description", "min_approvers", "due_hours", "escalate_hours", "escalate_to"}
# Stages an SLA's `min_approvers` raises: those decided by the service's own people.
_SLA_STAGE_SOURCES = ("service_approvers", "service_owners")
_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[A-Za-z0-9_]+)*)\}")
# Post-deploy verification (`require: verification: {minutes, interval_seconds}`): the window
# after a successful deployment during which the service's health is polled, and how often.
_VERIFICATION_KEYS = {"minutes", "interval_seconds"}
VERIFICATION_MAX_MINUTES = 24 * 60
VERIFICATION_MIN_INTERVAL = 10
VERIFICATION_DEFAULT_INTERVAL = 60
# What a stage can hold: its key and name as stored on the request, a count and an order the
# database keeps as small integers, and times (hours) no longer than a year.
STAGE_KEY_LENGTH = 50
STAGE_NAME_LENGTH = 100
MAX_APPROVALS = 1000
MAX_ORDER = 10000
MAX_HOURS = 24 * 365
# Boolean requirements: any matching rule that sets one turns it on (strictest wins).
_FLAGS = ("dual_control", "retro_review", "itsm_change")
_STAGE_KEYS = {
    "key",
    "name",
    "approvers",
    "count",
    "order",
    "step_up",
    "sla_hours",
    "remind_hours",
    "escalate_hours",
    "escalate_to",
    "teams",
}
# How the owning teams of a shared service decide a stage; the later in this list, the stricter.
TEAM_RULES = {
    "any": "any owning team",
    "primary": "the primary owning team",
    "each": "one approval from each owning team",
}


@dataclass
class StageRequirement:
    key: str
    name: str
    approvers: str
    count: int
    order: int
    step_up: bool
    sla_hours: int | None
    rules: list[str] = field(default_factory=list)
    teams: str = ""  # a TEAM_RULES key, or "" when the policy says nothing about teams
    # Hours after the stage opens: remind undecided approvers, then escalate to the CAB.
    # None: halfway to the SLA, and at the SLA (see `reminder_delay`, `escalation_delay`).
    remind_hours: int | None = None
    escalate_hours: int | None = None
    # A team (slug) told when the stage escalates, besides the CAB (an SLA names one).
    escalate_to: str = ""

    @property
    def approvers_label(self) -> str:
        return APPROVER_SOURCES[self.approvers]

    def reminder_delay(self) -> timedelta | None:
        """How long after opening the undecided approvers are reminded (None: never)."""
        if self.remind_hours is not None:
            return timedelta(hours=self.remind_hours)
        return timedelta(hours=self.sla_hours) / 2 if self.sla_hours else None

    def escalation_delay(self) -> timedelta | None:
        """How long after opening the stage goes to the CAB (None: never)."""
        hours = self.escalate_hours if self.escalate_hours is not None else self.sla_hours
        return timedelta(hours=hours) if hours else None


@dataclass
class Plan:
    """The approval plan resolved for one release; frozen onto its approval request."""

    stages: list[StageRequirement] = field(default_factory=list)
    evidence: list[EvidenceRequirement] = field(default_factory=list)
    approval_valid_hours: int | None = None
    dual_control: bool = False
    retro_review: bool = False
    # The change must exist in the ITSM tool and be authorised there.
    itsm_change: bool = False
    matched_rules: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Reasons the policy itself blocks the release (`require: block:`), placeholders filled.
    blocks: list[str] = field(default_factory=list)
    # Built-in checks (CHECKS keys) to hold at deploy time, with the rules that asked.
    checks: dict[str, list[str]] = field(default_factory=dict)
    # Compliance checklists: per checkpoint (SOX, HIPAA, PCI...), the requirements it holds as
    # {"kind": "stage"|"evidence"|"check", "key": ...}.
    checkpoints: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # The SLAs that tightened the stages, with the rule that named each.
    slas: list[dict[str, Any]] = field(default_factory=list)
    # Set when a standard change template approved the release (see `standard`).
    standard_change: dict[str, Any] | None = None
    # Things a person should know about the plan, e.g. why a standard change did not apply.
    notes: list[str] = field(default_factory=list)
    # Post-deploy verification, when a rule asks for it: {"minutes", "interval_seconds",
    # "rules"} (the longest window and the shortest interval of the matching rules).
    verification: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stage_groups(self) -> list[list[StageRequirement]]:
        """The stages in the order they open; stages sharing an `order` open together."""
        groups: dict[int, list[StageRequirement]] = {}
        for stage in self.stages:
            groups.setdefault(stage.order, []).append(stage)
        return [groups[order] for order in sorted(groups)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            stages=[StageRequirement(**s) for s in data.get("stages", [])],
            evidence=[EvidenceRequirement(**e) for e in data.get("evidence", [])],
            approval_valid_hours=data.get("approval_valid_hours"),
            dual_control=data.get("dual_control", False),
            retro_review=data.get("retro_review", False),
            itsm_change=data.get("itsm_change", False),
            matched_rules=data.get("matched_rules", []),
            errors=data.get("errors", []),
            blocks=data.get("blocks", []),
            checks=data.get("checks", {}),
            checkpoints=data.get("checkpoints", {}),
            slas=data.get("slas", []),
            standard_change=data.get("standard_change"),
            notes=data.get("notes", []),
            verification=data.get("verification"),
        )


@dataclass(frozen=True)
class CompensatingControl:
    key: str
    label: str


# What the emergency path grants and asks when a policy says nothing (see `emergency_settings`).
DEFAULT_CONTROLS = (
    CompensatingControl("extra_monitoring", "Extra monitoring during and after the deployment"),
    CompensatingControl("pair_deployment", "Pair deployment (a second engineer watches)"),
    CompensatingControl("rollback_plan", "Immediate rollback plan, tested"),
    CompensatingControl("post_deploy_verification", "Post-deploy verification"),
)
_EMERGENCY_KEYS = {"exception_hours", "post_mortem_hours", "controls"}


@dataclass(frozen=True)
class EmergencySettings:
    """The policy's `emergency:` section: how long an emergency exception lasts, when its
    post-mortem is due after deployment, and the compensating controls to choose from."""

    exception_hours: int = 4
    post_mortem_hours: int = 72
    controls: tuple[CompensatingControl, ...] = DEFAULT_CONTROLS

    def control_label(self, key: str) -> str:
        return next((c.label for c in self.controls if c.key == key), key)


@functools.lru_cache(maxsize=64)
def emergency_settings(source: str) -> EmergencySettings:
    """The emergency section of a policy document, defaults filled in; PolicyError if bad."""
    return _emergency_settings(source)


# The cached readers' bodies live in undecorated functions: mutation testing (mutmut) leaves
# decorated functions alone, and these hold rules.
def _emergency_settings(source: str) -> EmergencySettings:
    try:
        document = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise PolicyError(f"The policy is not valid YAML: {exc}") from None
    raw = document.get("emergency") if isinstance(document, dict) else None
    if raw is None:
        return EmergencySettings()
    if not isinstance(raw, dict):
        raise PolicyError("The policy's 'emergency' section must be a mapping.")
    reject_unknown(raw, _EMERGENCY_KEYS, "emergency")
    for name in ("exception_hours", "post_mortem_hours"):
        if name in raw:
            whole_number(raw[name], f"emergency, {name}", maximum=MAX_HOURS)
    controls = DEFAULT_CONTROLS
    if "controls" in raw:
        controls = tuple(_control(item) for item in listed(raw["controls"], "emergency, controls"))
        if len({c.key for c in controls}) != len(controls):
            raise PolicyError("emergency, controls: each key may appear once.")
    defaults = EmergencySettings()
    return EmergencySettings(
        exception_hours=raw.get("exception_hours", defaults.exception_hours),
        post_mortem_hours=raw.get("post_mortem_hours", defaults.post_mortem_hours),
        controls=controls,
    )


def _control(item: Any) -> CompensatingControl:
    if not isinstance(item, dict) or not item.get("key") or not item.get("label"):
        raise PolicyError("emergency, controls: each control needs a 'key' and a 'label'.")
    reject_unknown(item, {"key", "label"}, f"emergency, control '{item['key']}'")
    return CompensatingControl(str(item["key"]), str(item["label"]))


@dataclass
class Rule:
    id: str
    description: str
    when: str
    require: dict[str, Any]
    program: Any
    checkpoint: str = ""


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def parse(source: str) -> tuple[Rule, ...]:
    """Parse and validate a policy document; raise PolicyError naming the rule, line and column.

    Besides each rule on its own, the rules together must make sense: one stage key drawn from
    one approver source, every SLA named defined, every condition true or false.
    """
    return _parse(source)


def _parse(source: str) -> tuple[Rule, ...]:
    try:
        root = yaml.compose(source)
        document = yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        # Every error PyYAML's scanner, parser, composer and safe constructor raise carries a
        # problem mark; `if mark` only guards (`or True` there is an equivalent mutant).
        mark = exc.problem_mark
        raise PolicyError(
            f"The policy is not valid YAML: {exc}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"The policy is not valid YAML: {exc}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively: a few thousand `[` exhaust the stack.
        raise PolicyError("The policy nests lists or mappings too deeply.", line=1) from None
    _refuse_repeated_keys(root)
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise PolicyError("The policy must be a mapping with a list under 'rules'.", line=1)
    reject_unknown(document, _DOCUMENT_KEYS, "The policy")
    emergency_settings(source)  # refuse a bad emergency section when the policy is parsed
    slas = sla_definitions(source)
    standard_templates(source)  # likewise the standard change catalogue
    rule_nodes = _section_items(root, "rules")
    rules, seen = [], set()
    for index, raw in enumerate(document["rules"]):
        node = rule_nodes[index] if index < len(rule_nodes) else None
        try:
            rule = _parse_rule(raw, index, node, source)
            where = _rule_place(f"Rule '{rule.id}'", node)
            if rule.id in seen:
                raise PolicyError(f"{where}: the id is used twice.")
            sla = rule.require.get("sla")
            if sla is not None and not one_of(sla, slas):
                raise PolicyError(
                    f"{where}: SLA '{sla}' is not defined under "
                    f"'slas' ({', '.join(slas) or 'none are'})."
                )
        except PolicyError as exc:
            if exc.line is None and node is not None:
                exc.line, exc.column = node.start_mark.line + 1, node.start_mark.column + 1
            raise
        seen.add(rule.id)
        rules.append(rule)
    _check_stage_sources(rules, rule_nodes)
    return tuple(rules)


def _refuse_repeated_keys(root: yaml.Node | None) -> None:
    repeat = first_repeated_key(root)
    if repeat is None:
        return
    first, second = repeat
    raise PolicyError(
        f"'{second.value}' is given twice in one mapping (line {first.start_mark.line + 1}, then "
        f"line {second.start_mark.line + 1}): YAML would keep only the second and silently drop "
        "the first. Give it once.",
        line=second.start_mark.line + 1,
        column=second.start_mark.column + 1,
    )


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _rule_place(rule: str, node: yaml.Node | None) -> str:
    """How a refusal names a rule: with its line where the YAML places it (a rule brought in by
    a merge key `<<` has no node of its own)."""
    line = _line(node)
    return f"{rule} (line {line})" if line is not None else rule


def _section_items(root: yaml.Node | None, section: str) -> list[yaml.Node]:
    """The item nodes of a top-level list (`rules`, `standard_changes`...), for positions."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == section and isinstance(value, yaml.SequenceNode):
            return value.value
    return []


def _check_stage_sources(rules: list[Rule], nodes: list[yaml.Node]) -> None:
    """Two rules giving one stage different approver sources: which would decide it? Refused,
    rather than letting the first silently win."""
    first: dict[str, tuple[str, str]] = {}
    for index, rule in enumerate(rules):
        for stage in rule.require.get("stages") or []:
            key, source = stage["key"], stage["approvers"]
            if key in first and first[key][1] != source:
                other, other_source = first[key]
                # `nodes` has one node per rule, or none (rules brought in by a merge key), and
                # a conflict needs an earlier rule: `<=` would read the same (equivalent mutant).
                node = nodes[index] if index < len(nodes) else None
                where = _rule_place(f"Rule '{rule.id}'", node)
                raise PolicyError(
                    f"{where}: stage '{key}' is drawn from "
                    f"{source}, but rule '{other}' draws it from {other_source}; one stage has "
                    "one approver source (use another stage key for the other approvers).",
                    line=_line(node),
                    column=node.start_mark.column + 1 if node is not None else None,
                )
            first.setdefault(key, (rule.id, source))


def _parse_rule(raw: Any, index: int, node: yaml.Node | None, source: str) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{_rule_place(f'Rule {index + 1}', node)} must be a mapping.")
    rule_id = str(raw.get("id") or "").strip()
    if not rule_id:
        raise PolicyError(f"{_rule_place(f'Rule {index + 1}', node)} needs an 'id'.")
    where = _rule_place(f"Rule '{rule_id}'", node)
    reject_unknown(raw, _RULE_KEYS, where)
    when = raw.get("when", "true")
    # YAML reads a bare `when: true` as a boolean; CEL spells it in lower case.
    when = str(when).lower() if isinstance(when, bool) else str(when).strip()
    program = compile_condition(when, where, child_node(node, "when"), source)
    require = raw.get("require") or {}
    if not isinstance(require, dict):
        raise PolicyError(f"{where}: 'require' must be a mapping.")
    reject_unknown(require, _REQUIRE_KEYS, f"{where}, require")
    _validate_require(require, where)
    checkpoint = raw.get("checkpoint", "")
    if not isinstance(checkpoint, str):
        raise PolicyError(f"{where}: 'checkpoint' must be a name such as SOX, HIPAA or PCI.")
    return Rule(
        rule_id, str(raw.get("description", "")), when, require, program, checkpoint.strip()
    )


def _validate_require(require: dict, where: str) -> None:
    for stage in listed(require.get("stages"), f"{where}: 'stages'"):
        if not isinstance(stage, dict):
            raise PolicyError(f"{where}: each stage must be a mapping.")
        reject_unknown(stage, _STAGE_KEYS, f"{where}, stage")
        if not one_of(stage.get("approvers"), APPROVER_SOURCES):
            raise PolicyError(
                f"{where}: stage approvers must be one of {', '.join(APPROVER_SOURCES)}."
            )
        if not isinstance(stage.get("key"), str) or not stage["key"]:
            raise PolicyError(f"{where}: each stage needs a 'key' (a name).")
        named = f"{where}, stage '{stage['key']}'"
        _check_stage_names(stage, named)
        # The defaults here are only validated, never used: any valid default is equivalent.
        whole_number(stage.get("count", 1), f"{named} count", maximum=MAX_APPROVALS)
        whole_number(stage.get("order", 100), f"{named} order", minimum=0, maximum=MAX_ORDER)
        for hours in ("sla_hours", "remind_hours", "escalate_hours"):
            if stage.get(hours) is not None:
                whole_number(stage[hours], f"{named} {hours}", maximum=MAX_HOURS)
        remind, escalate = stage.get("remind_hours"), stage.get("escalate_hours")
        if remind is not None and escalate is not None and remind >= escalate:
            raise PolicyError(
                f"{where}, stage '{stage['key']}': remind_hours must come before escalate_hours."
            )
        # Only validated, never used: a True default would be equally valid.
        boolean(stage.get("step_up", False), f"{where}, stage '{stage['key']}' step_up")
        if not one_of(stage.get("teams", "any"), TEAM_RULES):
            raise PolicyError(
                f"{where}: stage '{stage['key']}' teams must be one of {', '.join(TEAM_RULES)}."
            )
    for evidence in listed(require.get("evidence"), f"{where}: 'evidence'"):
        try:
            validate_requirement(evidence, where)
        except EvidenceError as exc:
            raise PolicyError(str(exc)) from None
    if require.get("approval_valid_hours") is not None:
        whole_number(
            require["approval_valid_hours"], f"{where}, approval_valid_hours", maximum=MAX_HOURS
        )
    for flag in _FLAGS:
        boolean(require.get(flag, False), f"{where}, {flag}")  # default only validated
    checks = require.get("checks") or []
    if not isinstance(checks, list) or not all(one_of(check, CHECKS) for check in checks):
        raise PolicyError(f"{where}: checks must be a list of {', '.join(CHECKS)}.")
    if require.get("verification") is not None:
        _validate_verification(require["verification"], f"{where}, verification")
    block = require.get("block")
    if block is not None:
        if not isinstance(block, str) or not block.strip():
            raise PolicyError(f"{where}: 'block' must be the reason, in words.")
        for path in _PLACEHOLDER.findall(block):
            if path.split(".")[0] not in CONTEXT_VARIABLES:
                raise PolicyError(f"{where}: 'block' names unknown variable {{{path}}}.")


def _check_stage_names(stage: dict, where: str) -> None:
    """The key, name and escalation team are text that fits where the request keeps them."""
    if len(stage["key"]) > STAGE_KEY_LENGTH:
        raise PolicyError(f"{where}: the key is longer than {STAGE_KEY_LENGTH} characters.")
    name = stage.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > STAGE_NAME_LENGTH):
        raise PolicyError(
            f"{where}: 'name' must be text of at most {STAGE_NAME_LENGTH} characters."
        )
    if not isinstance(stage.get("escalate_to", ""), str):
        raise PolicyError(f"{where}: 'escalate_to' must be a team's slug.")


def _validate_verification(raw: Any, where: str) -> None:
    """`verification: {minutes: 30, interval_seconds: 60}`: a window of at most a day, polled
    at least every VERIFICATION_MIN_INTERVAL seconds and at least once inside the window."""
    if not isinstance(raw, dict):
        raise PolicyError(
            f"{where} must be a mapping such as {{minutes: 30, interval_seconds: 60}}."
        )
    reject_unknown(raw, _VERIFICATION_KEYS, where)
    if "minutes" not in raw:
        raise PolicyError(f"{where} needs 'minutes': how long after a deployment to watch it.")
    whole_number(raw["minutes"], f"{where}, minutes")
    if raw["minutes"] > VERIFICATION_MAX_MINUTES:
        raise PolicyError(
            f"{where}, minutes must be at most {VERIFICATION_MAX_MINUTES} (a day), "
            f"got {raw['minutes']}."
        )
    interval = raw.get("interval_seconds", VERIFICATION_DEFAULT_INTERVAL)
    whole_number(interval, f"{where}, interval_seconds", minimum=VERIFICATION_MIN_INTERVAL)
    if interval > raw["minutes"] * 60:
        raise PolicyError(
            f"{where}, interval_seconds ({interval}) is longer than the window "
            f"({raw['minutes']} minutes): the health would never be checked."
        )


@dataclass(frozen=True)
class Sla:
    """A named service level (`slas:`): what a rule's `require: sla:` applies to every stage."""

    id: str
    description: str
    min_approvers: int | None
    due_hours: int | None
    escalate_hours: int | None
    escalate_to: str

    def as_dict(self, rule_id: str) -> dict[str, Any]:
        return {**asdict(self), "rule": rule_id}


@functools.lru_cache(maxsize=64)
def sla_definitions(source: str) -> dict[str, Sla]:
    """The `slas:` section of a policy document, by id; PolicyError if malformed."""
    return _sla_definitions(source)


def _sla_definitions(source: str) -> dict[str, Sla]:
    document = yaml.safe_load(source)
    raw = document.get("slas") if isinstance(document, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise PolicyError("The policy's 'slas' must be a list.")
    slas: dict[str, Sla] = {}
    for item in raw:
        if not isinstance(item, dict) or not str(item.get("id") or "").strip():
            raise PolicyError("slas: each SLA needs an 'id'.")
        where = f"SLA '{item['id']}'"
        reject_unknown(item, _SLA_KEYS, where)
        for name in ("min_approvers", "due_hours", "escalate_hours"):
            if item.get(name) is not None:
                limit = MAX_APPROVALS if name == "min_approvers" else MAX_HOURS
                whole_number(item[name], f"{where}, {name}", maximum=limit)
        escalate_to = item.get("escalate_to", "")
        if not isinstance(escalate_to, str):
            raise PolicyError(f"{where}: 'escalate_to' must be a team's slug.")
        slas[str(item["id"])] = Sla(
            id=str(item["id"]),
            description=str(item.get("description", "")),
            min_approvers=item.get("min_approvers"),
            due_hours=item.get("due_hours"),
            escalate_hours=item.get("escalate_hours"),
            escalate_to=escalate_to,
        )
    return slas


def evaluate(source: str, context: dict[str, Any]) -> Plan:
    """Resolve the plan for one release context; a rule failing at run time blocks (fail closed).

    Each matched rule is remembered with the context values its condition read (what the
    release page and the explain endpoint show); a condition that gives anything but true or
    false blocks too.
    """
    plan = Plan()
    stages: dict[str, StageRequirement] = {}
    evidence: dict[str, EvidenceRequirement] = {}
    matched_slas: list[tuple[Sla, str]] = []
    slas = sla_definitions(source)
    converted = cel_context(context)
    for rule in parse(source):
        try:
            result = rule.program.execute(converted)
        # ArithmeticError: division by zero or overflow in a condition must fail closed too.
        except (ArithmeticError, KeyError, RuntimeError, TypeError, ValueError) as exc:
            plan.errors.append(f"Policy rule '{rule.id}' could not be evaluated: {exc!r}")
            continue
        if not isinstance(result, bool):
            plan.errors.append(
                f"Policy rule '{rule.id}' gave {result!r}, not true or false; an administrator "
                "must fix its condition."
            )
            continue
        if not result:
            continue
        plan.matched_rules.append(
            {
                "id": rule.id,
                "description": rule.description,
                "when": rule.when,
                "values": referenced_values(rule.when, context),
            }
        )
        _merge(plan, stages, evidence, rule, context)
        if rule.require.get("sla"):
            matched_slas.append((slas[rule.require["sla"]], rule.id))
    for sla, rule_id in matched_slas:
        _apply_sla(stages.values(), sla, rule_id)
        plan.slas.append(sla.as_dict(rule_id))
    plan.stages = sorted(stages.values(), key=lambda s: (s.order, s.key))
    plan.evidence = sorted(evidence.values(), key=lambda e: e.kind)
    if not plan.matched_rules and not plan.errors:
        plan.errors.append("No policy rule applies to this release; an administrator must add one.")
    return plan


def _apply_sla(stages, sla: Sla, rule_id: str) -> None:
    """More approvers for the service's own stages, shorter due and escalation times for all,
    and who hears of an escalation: an SLA only ever tightens."""
    for stage in stages:
        if sla.min_approvers and stage.approvers in _SLA_STAGE_SOURCES:
            stage.count = max(stage.count, sla.min_approvers)
        if sla.due_hours:
            stage.sla_hours = min(filter(None, (stage.sla_hours, sla.due_hours)))
        if sla.escalate_hours:
            stage.escalate_hours = min(filter(None, (stage.escalate_hours, sla.escalate_hours)))
            if stage.remind_hours is not None and stage.remind_hours >= stage.escalate_hours:
                stage.remind_hours = None  # halfway to the SLA, as when the policy says nothing
        if sla.escalate_to and not stage.escalate_to:
            stage.escalate_to = sla.escalate_to
        stage.rules.append(f"{rule_id} (SLA {sla.id})")


def referenced_values(when: str, context: dict[str, Any]) -> dict[str, Any]:
    """The context values a condition reads, by dotted path (`plan.deletes`: 1), for people to
    see why it held. Paths inside string literals are not read; absent ones are left out."""
    # Any replacement naming no context variable would do (a mutant's 'XX""XX' is equivalent).
    code = _STRING_LITERAL.sub('""', when)
    values: dict[str, Any] = {}
    for match in _PATH.finditer(code):
        path = match.group(0)
        value: Any = context
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            values[path] = value
    return values


_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_PATH = re.compile(r"\b(?:" + "|".join(CONTEXT_VARIABLES) + r")(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _merge(
    plan: Plan,
    stages: dict[str, StageRequirement],
    evidence: dict[str, EvidenceRequirement],
    rule: Rule,
    context: dict[str, Any],
) -> None:
    require = rule.require
    checklist = plan.checkpoints.setdefault(rule.checkpoint, []) if rule.checkpoint else None
    for raw in require.get("stages") or []:
        _merge_stage(stages, raw, rule.id)
        _add_item(checklist, "stage", raw["key"])
    for raw in require.get("evidence") or []:
        merge_requirement(evidence, raw, rule.id)
        _add_item(checklist, "evidence", raw["kind"])
    for check in require.get("checks") or []:
        plan.checks.setdefault(check, []).append(rule.id)
        _add_item(checklist, "check", check)
    if require.get("itsm_change"):
        _add_item(checklist, "check", "itsm_change")
    if require.get("block"):
        plan.blocks.append(_fill(require["block"], context) + f" (policy rule {rule.id})")
    if require.get("verification"):
        _merge_verification(plan, require["verification"], rule.id)
    valid = require.get("approval_valid_hours")
    if valid is not None:
        plan.approval_valid_hours = min(valid, plan.approval_valid_hours or valid)
    for flag in _FLAGS:
        setattr(plan, flag, getattr(plan, flag) or bool(require.get(flag)))


def _merge_verification(plan: Plan, raw: dict, rule_id: str) -> None:
    """Strictest wins: the longest window, polled at the shortest interval."""
    minutes = raw["minutes"]
    interval = raw.get("interval_seconds", VERIFICATION_DEFAULT_INTERVAL)
    current = plan.verification
    if current is None:
        plan.verification = {"minutes": minutes, "interval_seconds": interval, "rules": [rule_id]}
        return
    current["minutes"] = max(current["minutes"], minutes)
    current["interval_seconds"] = min(current["interval_seconds"], interval)
    current["rules"].append(rule_id)


def _add_item(checklist: list | None, kind: str, key: str) -> None:
    if checklist is not None and {"kind": kind, "key": key} not in checklist:
        checklist.append({"kind": kind, "key": key})


def _fill(text: str, context: dict[str, Any]) -> str:
    """`block:` text with `{plan.world_open}` and the like replaced by the release's values."""

    def value(match: re.Match) -> str:
        found = referenced_values(match.group(1), context).get(match.group(1))
        if isinstance(found, list):
            return ", ".join(map(str, found)) or "none"
        return str(found) if found is not None else "?"

    return _PLACEHOLDER.sub(value, text)


def _merge_stage(stages: dict[str, StageRequirement], raw: dict, rule_id: str) -> None:
    key = raw["key"]
    incoming = StageRequirement(
        key=key,
        name=raw.get("name") or key.replace("_", " ").capitalize(),
        approvers=raw["approvers"],
        count=raw.get("count", 1),
        order=raw.get("order", 100),
        step_up=bool(raw.get("step_up", False)),  # a None default would be equivalent
        sla_hours=raw.get("sla_hours"),
        rules=[rule_id],
        teams=raw.get("teams", ""),
        remind_hours=raw.get("remind_hours"),
        escalate_hours=raw.get("escalate_hours"),
        escalate_to=raw.get("escalate_to", ""),
    )
    current = stages.get(key)
    if current is None:
        stages[key] = incoming
        return
    current.count = max(current.count, incoming.count)
    order = ["", *TEAM_RULES]
    current.teams = max(current.teams, incoming.teams, key=order.index)
    current.step_up = current.step_up or incoming.step_up
    slas = [s for s in (current.sla_hours, incoming.sla_hours) if s is not None]
    current.sla_hours = min(slas) if slas else None
    # The earliest reminder and escalation win, like the shortest SLA.
    for name in ("remind_hours", "escalate_hours"):
        hours = [h for h in (getattr(current, name), getattr(incoming, name)) if h is not None]
        setattr(current, name, min(hours) if hours else None)
    current.order = min(current.order, incoming.order)
    current.escalate_to = current.escalate_to or incoming.escalate_to
    current.rules.append(rule_id)
