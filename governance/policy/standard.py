"""Standard changes: the policy's catalogue of pre-approved change templates.

A template names the services and environments it covers, the conditions under which its work
is routine (a CEL condition, evidence, a time window), an owner and a review date. A release
that names a template whose conditions all hold is approved by the template: nobody's decision
is invented, the ledger records the template and the policy version. When any condition fails,
the release takes the normal path and its plan says why. A template past its review date no
longer applies until someone reviews it (changes it or moves the date, which is a policy
change: a second administrator approves every change to the catalogue).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from governance.policy.conditions import (
    PolicyError,
    cel_context,
    child_node,
    compile_condition,
    reject_unknown,
)
from governance.policy.evidence import (
    EvidenceError,
    EvidenceRequirement,
    merge_requirement,
    problem,
    validate_requirement,
)

_TEMPLATE_KEYS = {
    "id",
    "name",
    "description",
    "owner",
    "services",
    "environments",
    "when",
    "evidence",
    "window",
    "review_by",
}
_WINDOW_KEYS = {"days", "start", "end", "timezone"}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """Days of the week and a time of day, in a named time zone, when the template applies."""

    days: tuple[str, ...]
    start: time
    end: time
    timezone: str

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone))
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end

    def describe(self) -> str:
        return (
            f"{', '.join(d.capitalize() for d in self.days)} "
            f"{self.start:%H:%M}-{self.end:%H:%M} ({self.timezone})"
        )


@dataclass(frozen=True)
class StandardTemplate:
    id: str
    name: str
    description: str
    owner: str
    services: tuple[str, ...]
    environments: tuple[str, ...]
    when: str
    program: Any
    evidence: tuple[dict, ...]
    window: Window | None
    review_by: date

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "review_by": self.review_by.isoformat(),
        }


@functools.lru_cache(maxsize=64)
def standard_templates(source: str) -> dict[str, StandardTemplate]:
    """The catalogue of a policy document, by id; PolicyError (with the place) if malformed."""
    # The body lives apart so that mutation testing, which leaves decorated functions alone,
    # reaches it.
    return _standard_templates(source)


def _standard_templates(source: str) -> dict[str, StandardTemplate]:
    root = yaml.compose(source)
    document = yaml.safe_load(source)
    raw = document.get("standard_changes") if isinstance(document, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise PolicyError("The policy's 'standard_changes' must be a list of templates.")
    nodes = _items(root)
    templates: dict[str, StandardTemplate] = {}
    for index, item in enumerate(raw):
        node = nodes[index] if index < len(nodes) else None
        try:
            template = _template(item, index, node, source)
        except PolicyError as exc:
            if exc.line is None and node is not None:
                exc.line, exc.column = node.start_mark.line + 1, node.start_mark.column + 1
            raise
        if template.id in templates:
            raise PolicyError(
                f"Standard change '{template.id}': the id is used twice.",
                line=node.start_mark.line + 1 if node is not None else None,
            )
        templates[template.id] = template
    return templates


def _items(root: yaml.Node | None) -> list[yaml.Node]:
    node = child_node(root, "standard_changes")
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _template(item: Any, index: int, node: yaml.Node | None, source: str) -> StandardTemplate:
    if not isinstance(item, dict) or not str(item.get("id") or "").strip():
        raise PolicyError(f"Standard change {index + 1} needs an 'id'.")
    where = f"Standard change '{item['id']}'"
    reject_unknown(item, _TEMPLATE_KEYS, where)
    for name in ("name", "owner"):
        if not str(item.get(name) or "").strip():
            raise PolicyError(f"{where}: '{name}' is required.")
    services, environments = _slugs(item, "services", where), _slugs(item, "environments", where)
    when = item.get("when", "true")
    when = str(when).lower() if isinstance(when, bool) else str(when).strip()
    program = compile_condition(when, where, child_node(node, "when"), source)
    evidence = item.get("evidence") or []
    if not isinstance(evidence, list):
        raise PolicyError(f"{where}: 'evidence' must be a list.")
    for requirement in evidence:
        try:
            validate_requirement(requirement, where)
        except EvidenceError as exc:
            raise PolicyError(str(exc)) from None
    review_by = item.get("review_by")
    if not isinstance(review_by, date) or isinstance(review_by, datetime):
        raise PolicyError(
            f"{where}: 'review_by' must be a date (YYYY-MM-DD): templates are reviewed, "
            "and stop applying after that date until they are."
        )
    return StandardTemplate(
        id=str(item["id"]).strip(),
        name=str(item["name"]).strip(),
        description=str(item.get("description", "")),
        owner=str(item["owner"]).strip(),
        services=services,
        environments=environments,
        when=when,
        program=program,
        evidence=tuple(evidence),
        window=_window(item.get("window"), where),
        review_by=review_by,
    )


def _slugs(item: dict, name: str, where: str) -> tuple[str, ...]:
    value = item.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: '{name}' must be a non-empty list of slugs.")
    return tuple(value)


def _window(raw: Any, where: str) -> Window | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: 'window' must be a mapping of days, start, end, timezone.")
    reject_unknown(raw, _WINDOW_KEYS, f"{where}, window")
    days = raw.get("days", list(DAYS[:5]))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise PolicyError(f"{where}, window: 'days' must list some of {', '.join(DAYS)}.")
    try:
        start, end = (time.fromisoformat(str(raw[k])) for k in ("start", "end"))
    except (KeyError, ValueError):
        raise PolicyError(f"{where}, window: 'start' and 'end' must be times (HH:MM).") from None
    if start >= end:
        raise PolicyError(f"{where}, window: 'start' must come before 'end'.")
    zone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    # OSError: ZoneInfo opens the name as a file, and a name too long for one fails that way.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PolicyError(f"{where}, window: unknown time zone '{zone}'.") from None
    return Window(tuple(days), start, end, zone)


@dataclass
class Outcome:
    """Whether a named template approves a release: `failures` say why not, in words."""

    template: StandardTemplate | None
    failures: list[str]
    evidence: list[EvidenceRequirement]

    @property
    def applies(self) -> bool:
        return self.template is not None and not self.failures


def assess(
    source: str,
    template_id: str,
    context: dict[str, Any],
    evidence: dict[str, dict],
    now: datetime,
) -> Outcome:
    """Whether template `template_id` of the policy approves the release of `context` now;
    `evidence` holds the release's latest item of each kind, as `evidence.snapshot_item`."""
    template = standard_templates(source).get(template_id)
    if template is None:
        return Outcome(None, [f"no standard change '{template_id}' in the policy"], [])
    failures = []
    if now.date() > template.review_by:
        failures.append(f"it was due for review on {template.review_by:%Y-%m-%d}")
    if context["service"]["slug"] not in template.services:
        failures.append(f"it does not cover service {context['service']['slug']}")
    if context["environment"]["slug"] not in template.environments:
        failures.append(f"it does not cover environment {context['environment']['slug']}")
    if context["change"]["type"] != "standard":
        failures.append(f"the change is {context['change']['type']}, not standard")
    if template.window and not template.window.contains(now):
        failures.append(f"it applies only {template.window.describe()}")
    try:
        holds = template.program.execute(cel_context(context))
    # A condition that cannot be evaluated does not hold (fail closed). Mutation testing keeps
    # alive a mutant keeping None instead of the error: equivalent, neither is True.
    except (ArithmeticError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        holds = exc
    if holds is not True:
        failures.append(f"its condition `{template.when}` does not hold")
    requirements: dict[str, EvidenceRequirement] = {}
    for raw in template.evidence:
        merge_requirement(requirements, raw, f"standard:{template.id}")
    for requirement in requirements.values():
        reason = problem(requirement, evidence.get(requirement.kind))
        if reason:
            # Every reason ends with a quote or a word of ours and its full stop, so a mutant
            # stripping "X" too (`rstrip("XX.XX")`) is equivalent.
            failures.append(reason.rstrip("."))
    return Outcome(template, failures, list(requirements.values()))
