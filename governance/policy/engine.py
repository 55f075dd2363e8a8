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

import cel
import yaml

from governance.policy.evidence import (
    EvidenceError,
    EvidenceRequirement,
    merge_requirement,
    validate_requirement,
)

# What a `when:` expression may refer to; the approvals app builds this context for a release.
CONTEXT_VARIABLES = ("release", "service", "environment", "change", "evidence", "incidents")
APPROVER_SOURCES = {
    "service_approvers": "approvers of the service",
    "service_owners": "owners of the service (CMDB)",
    "cab": "CAB members",
    # Added by a soft freeze (changes.freezes), or asked for by a policy.
    "release_managers": "release managers of the service",
}
_RULE_KEYS = {"id", "description", "when", "require"}
_REQUIRE_KEYS = {
    "stages",
    "evidence",
    "approval_valid_hours",
    "dual_control",
    "retro_review",
    "itsm_change",
}
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
    "teams",
}
# How the owning teams of a shared service decide a stage; the later in this list, the stricter.
TEAM_RULES = {
    "any": "any owning team",
    "primary": "the primary owning team",
    "each": "one approval from each owning team",
}
_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.+)")


class PolicyError(ValueError):
    """A policy document that cannot be used; the message names the rule and the place."""


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
    matched_rules: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
    try:
        document = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise PolicyError(f"The policy is not valid YAML: {exc}") from None
    raw = document.get("emergency") if isinstance(document, dict) else None
    if raw is None:
        return EmergencySettings()
    if not isinstance(raw, dict):
        raise PolicyError("The policy's 'emergency' section must be a mapping.")
    _reject_unknown(raw, _EMERGENCY_KEYS, "emergency")
    for name in ("exception_hours", "post_mortem_hours"):
        if name in raw:
            _whole_number(raw[name], f"emergency, {name}")
    controls = DEFAULT_CONTROLS
    if "controls" in raw:
        controls = tuple(_control(item) for item in raw["controls"] or [])
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
    _reject_unknown(item, {"key", "label"}, f"emergency, control '{item['key']}'")
    return CompensatingControl(str(item["key"]), str(item["label"]))


@dataclass
class Rule:
    id: str
    description: str
    when: str
    require: dict[str, Any]
    program: Any


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def parse(source: str) -> tuple[Rule, ...]:
    """Parse and validate a policy document; raise PolicyError naming the rule, line and column."""
    try:
        root = yaml.compose(source)
        document = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise PolicyError(f"The policy is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise PolicyError("The policy must be a mapping with a list under 'rules'.")
    _reject_unknown(document, {"rules", "emergency"}, "The policy")
    emergency_settings(source)  # refuse a bad emergency section when the policy is parsed
    rule_nodes = _rule_nodes(root)
    rules, seen = [], set()
    for index, raw in enumerate(document["rules"]):
        line = rule_nodes[index].start_mark.line + 1 if index < len(rule_nodes) else 0
        rule = _parse_rule(raw, index, line, _when_line(rule_nodes, index))
        if rule.id in seen:
            raise PolicyError(f"Rule '{rule.id}' (line {line}): the id is used twice.")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)


def _rule_nodes(root: yaml.Node | None) -> list[yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        # `or` would be equivalent: the only other key, `emergency`, is refused unless a mapping.
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return value.value
    return []


def _when_line(rule_nodes: list[yaml.Node], index: int) -> int:
    node = rule_nodes[index] if index < len(rule_nodes) else None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "when":
                # A block scalar (`when: >`) starts on the line after its indicator.
                return value.start_mark.line + 1 + (1 if value.style in ("|", ">") else 0)
    return 0  # 1 would be equivalent: `_compile` counts from the condition's first line either way


def _parse_rule(raw: Any, index: int, line: int, when_line: int) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"Rule {index + 1} (line {line}) must be a mapping.")
    rule_id = str(raw.get("id") or "").strip()
    if not rule_id:
        raise PolicyError(f"Rule {index + 1} (line {line}) needs an 'id'.")
    where = f"Rule '{rule_id}' (line {line})"
    _reject_unknown(raw, _RULE_KEYS, where)
    when = raw.get("when", "true")
    # YAML reads a bare `when: true` as a boolean; CEL spells it in lower case.
    when = str(when).lower() if isinstance(when, bool) else str(when).strip()
    program = _compile(when, where, when_line)
    require = raw.get("require") or {}
    if not isinstance(require, dict):
        raise PolicyError(f"{where}: 'require' must be a mapping.")
    _reject_unknown(require, _REQUIRE_KEYS, f"{where}, require")
    _validate_require(require, where)
    return Rule(rule_id, str(raw.get("description", "")), when, require, program)


def _compile(when: str, where: str, when_line: int) -> Any:
    try:
        program = cel.compile(when)
    except ValueError as exc:
        match = _CEL_POSITION.search(str(exc))
        if match:
            expr_line, column, message = match.groups()
            at_line = when_line + int(expr_line) - 1 if when_line else int(expr_line)
            raise PolicyError(
                f"{where}: CEL syntax error in 'when' at line {at_line}, column {column}: {message}"
            ) from None
        # Unreachable in practice: every cel.compile error seen carries a position.
        raise PolicyError(f"{where}: CEL error in 'when': {exc}") from None
    unknown = sorted(set(program.variables()) - set(CONTEXT_VARIABLES))
    if unknown:
        raise PolicyError(
            f"{where}: 'when' uses unknown variable(s) {', '.join(unknown)}; "
            f"available: {', '.join(CONTEXT_VARIABLES)}."
        )
    return program


def _reject_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}.")


def _validate_require(require: dict, where: str) -> None:
    for stage in require.get("stages") or []:
        if not isinstance(stage, dict):
            raise PolicyError(f"{where}: each stage must be a mapping.")
        _reject_unknown(stage, _STAGE_KEYS, f"{where}, stage")
        if stage.get("approvers") not in APPROVER_SOURCES:
            raise PolicyError(
                f"{where}: stage approvers must be one of {', '.join(APPROVER_SOURCES)}."
            )
        if not stage.get("key"):
            raise PolicyError(f"{where}: each stage needs a 'key'.")
        # The defaults here are only validated, never used: any valid default is equivalent.
        _whole_number(stage.get("count", 1), f"{where}, stage '{stage['key']}' count")
        _whole_number(stage.get("order", 100), f"{where}, stage '{stage['key']}' order", minimum=0)
        for hours in ("sla_hours", "remind_hours", "escalate_hours"):
            if stage.get(hours) is not None:
                _whole_number(stage[hours], f"{where}, stage '{stage['key']}' {hours}")
        remind, escalate = stage.get("remind_hours"), stage.get("escalate_hours")
        if remind is not None and escalate is not None and remind >= escalate:
            raise PolicyError(
                f"{where}, stage '{stage['key']}': remind_hours must come before escalate_hours."
            )
        # Only validated, never used: a True default would be equally valid.
        _boolean(stage.get("step_up", False), f"{where}, stage '{stage['key']}' step_up")
        if stage.get("teams", "any") not in TEAM_RULES:
            raise PolicyError(
                f"{where}: stage '{stage['key']}' teams must be one of {', '.join(TEAM_RULES)}."
            )
    for evidence in require.get("evidence") or []:
        try:
            validate_requirement(evidence, where)
        except EvidenceError as exc:
            raise PolicyError(str(exc)) from None
    if require.get("approval_valid_hours") is not None:
        _whole_number(require["approval_valid_hours"], f"{where}, approval_valid_hours")
    for flag in _FLAGS:
        _boolean(require.get(flag, False), f"{where}, {flag}")  # default only validated


def _boolean(value: Any, where: str) -> None:
    # YAML reads `no` as False but "no" (quoted) as a truthy string: refuse anything not boolean.
    if not isinstance(value, bool):
        raise PolicyError(f"{where} must be true or false, got {value!r}.")


def _whole_number(value: Any, where: str, *, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = f"a whole number of at least {minimum}"
        if minimum == 1:
            kind = "a positive whole number"
        raise PolicyError(f"{where} must be {kind}, got {value!r}.")


def evaluate(source: str, context: dict[str, Any]) -> Plan:
    """Resolve the plan for one release context; a rule failing at run time blocks (fail closed)."""
    plan = Plan()
    stages: dict[str, StageRequirement] = {}
    evidence: dict[str, EvidenceRequirement] = {}
    for rule in parse(source):
        try:
            matched = rule.program.execute(context) is True
        # ArithmeticError: division by zero or overflow in a condition must fail closed too.
        except (ArithmeticError, KeyError, RuntimeError, TypeError, ValueError) as exc:
            plan.errors.append(f"Policy rule '{rule.id}' could not be evaluated: {exc!r}")
            continue
        if not matched:
            continue
        plan.matched_rules.append(
            {"id": rule.id, "description": rule.description, "when": rule.when}
        )
        _merge(plan, stages, evidence, rule)
    plan.stages = sorted(stages.values(), key=lambda s: (s.order, s.key))
    plan.evidence = sorted(evidence.values(), key=lambda e: e.kind)
    if not plan.matched_rules and not plan.errors:
        plan.errors.append("No policy rule applies to this release; an administrator must add one.")
    return plan


def _merge(
    plan: Plan,
    stages: dict[str, StageRequirement],
    evidence: dict[str, EvidenceRequirement],
    rule: Rule,
) -> None:
    require = rule.require
    for raw in require.get("stages") or []:
        _merge_stage(stages, raw, rule.id)
    for raw in require.get("evidence") or []:
        merge_requirement(evidence, raw, rule.id)
    valid = require.get("approval_valid_hours")
    if valid is not None:
        plan.approval_valid_hours = min(valid, plan.approval_valid_hours or valid)
    for flag in _FLAGS:
        setattr(plan, flag, getattr(plan, flag) or bool(require.get(flag)))


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
    current.rules.append(rule_id)
