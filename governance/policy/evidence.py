"""Evidence requirements: what a policy's `require: evidence:` asks for, how requirements from
several rules combine (the strictest wins), and whether a reported item meets one.

The gate and the compliance report judge evidence here, from the same snapshot of an item
(`snapshot_item`), so a release is never "met" on one page and "missing" on another.

Kinds pipelines report. Any slug is a kind; these four have a documented summary, checked when
the item arrives (`validate_item`), and the thresholds a policy may set on them:

| kind            | summary (counts are whole numbers of 0 or more)         | thresholds        |
|-----------------|---------------------------------------------------------|-------------------|
| `tests`         | JUnit totals: `passed`, `failed`, `skipped`, `total`    | `min_passed`,     |
|                 | (counts)                                                | `max_failed`,     |
|                 |                                                         | `max_skipped`     |
| `coverage`      | `percent` (required): a number from 0 to 100            | `min_coverage`    |
| `security_scan` | SARIF findings by severity: `critical`, `high`,         | `max_findings`    |
|                 | `medium`, `low`, `note` (counts); `tool` (text)         |                   |
| `peer_review`   | `url` (required, http/https), `reviewer` (required, a   | `distinct_reviewer` |
|                 | username: never the requester or pipeline trigger)      |                   |

Counts are whole numbers of 0 or more. A required field may be left out when the status is
`skipped`. Other kinds are free-form; a policy may set any threshold on them, read from the
summary field of the same name (so a `unit-tests` kind reporting JUnit totals can have
`max_failed`), and a count a kind does not report never passes for one (fail closed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

# Counts fit PostgreSQL's bigint and every client's 64-bit integer.
MAX_COUNT = 2**63 - 1
MAX_TOOL_LENGTH = 100
MAX_URL_LENGTH = 500
SEVERITIES = ("critical", "high", "medium", "low", "note")
# What Django accepts as a username; look-alikes are matched where conflicts are decided.
_USERNAME = re.compile(r"^[\w.@+-]{1,150}$")
_HTTP_URL = URLValidator(schemes=["http", "https"])

COUNT, PERCENT, TEXT, URL, USERNAME = "count", "percent", "text", "url", "username"
_EXPECTED = {
    COUNT: "a whole number of 0 or more",
    PERCENT: "a number from 0 to 100",
    TEXT: f"text of at most {MAX_TOOL_LENGTH} characters",
    URL: "an http or https URL",
    USERNAME: "a username",
}


@dataclass(frozen=True)
class SummaryField:
    name: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class EvidenceKind:
    """A kind with a documented summary and the requirement keys that make sense for it."""

    name: str
    summary: tuple[SummaryField, ...]
    thresholds: frozenset[str]


KINDS = {
    kind.name: kind
    for kind in (
        EvidenceKind(
            "tests",
            tuple(SummaryField(name, COUNT) for name in ("passed", "failed", "skipped", "total")),
            frozenset({"min_passed", "max_failed", "max_skipped"}),
        ),
        EvidenceKind(
            "coverage",
            (SummaryField("percent", PERCENT, required=True),),
            frozenset({"min_coverage"}),
        ),
        EvidenceKind(
            "security_scan",
            (*(SummaryField(name, COUNT) for name in SEVERITIES), SummaryField("tool", TEXT)),
            frozenset({"max_findings"}),
        ),
        EvidenceKind(
            "peer_review",
            (SummaryField("url", URL, required=True), SummaryField("reviewer", USERNAME, True)),
            frozenset({"distinct_reviewer"}),
        ),
    )
}
THRESHOLDS = (
    "min_passed",
    "max_failed",
    "max_skipped",
    "min_coverage",
    "max_findings",
    "distinct_reviewer",
)
EVIDENCE_KEYS = {"kind", "status", *THRESHOLDS}
# The summary counts requirements read, whatever the kind.
_COUNTS = ("passed", "failed", "skipped", *SEVERITIES)


class EvidenceError(ValueError):
    """An evidence requirement a policy cannot use; the engine turns it into a PolicyError."""


# --- Reported items ------------------------------------------------------------------------------


def summary_fields(kind: str) -> frozenset[str]:
    """The summary keys `validate_item` checks for `kind` (none for a free-form kind)."""
    definition = KINDS.get(kind)
    return frozenset(f.name for f in definition.summary) if definition else frozenset()


def validate_item(kind: str, status: str, summary: Any) -> dict[str, list[str]]:
    """Field errors of a reported item of a documented kind (empty when it may be kept).

    Only the fields the kind defines are judged; other keys are the caller's to check."""
    definition = KINDS.get(kind)
    if definition is None or not isinstance(summary, dict):
        return {}
    problems = []
    for spec in definition.summary:
        if spec.name not in summary:
            # A skipped check ran nothing: it has no percent or reviewer to report.
            if spec.required and status != "skipped":
                problems.append(f"'{spec.name}' is required: {_EXPECTED[spec.type]}.")
            continue
        problem = _field_problem(spec, summary[spec.name])
        if problem:
            problems.append(problem)
    if not problems and kind == "tests":
        problems = _totals_problem(summary)
    return {"summary": problems} if problems else {}


def _field_problem(spec: SummaryField, value: Any) -> str | None:
    if spec.type == COUNT:
        return _count_problem(spec.name, value)
    if spec.type == PERCENT:
        if _percent(value) is None:
            return f"'{spec.name}' must be {_EXPECTED[PERCENT]}, not {_shown(value)}."
        return None
    if not isinstance(value, str):
        return f"'{spec.name}' must be {_EXPECTED[spec.type]}, not {_shown(value)}."
    if spec.type == TEXT and len(value) > MAX_TOOL_LENGTH:
        return f"'{spec.name}' is longer than {MAX_TOOL_LENGTH} characters."
    if spec.type == USERNAME and not _USERNAME.match(value):
        return f"'{spec.name}' must be a username (letters, digits and @.+-_), not {value!r}."
    if spec.type == URL and not _is_http_url(value):
        return f"'{spec.name}' must be an http or https URL of at most {MAX_URL_LENGTH} characters."
    return None


def _count_problem(name: str, value: Any) -> str | None:
    """The wording the API has always used for counts, so clients see one set of messages."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return f"'{name}' must be {_EXPECTED[COUNT]}, not {value}."
        return f"'{name}' must be at most {MAX_COUNT}." if value > MAX_COUNT else None
    return f"'{name}' is a count: {_EXPECTED[COUNT]}, not {_shown(value)}."


def _totals_problem(summary: dict) -> list[str]:
    counted = sum(summary.get(name, 0) for name in ("passed", "failed", "skipped"))
    total = summary.get("total")
    if total is not None and counted > total:
        return [f"'total' is {total}, fewer than passed + failed + skipped ({counted})."]
    return []


def _shown(value: Any) -> str:
    """A JSON value as a person reads it in an error message."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    return repr(value)


def _is_http_url(value: str) -> bool:
    if len(value) > MAX_URL_LENGTH:
        return False
    try:
        _HTTP_URL(value)
    except ValidationError:
        return False
    return True


def _count(value: Any) -> int | None:
    """A usable count; None for anything else (a boolean or a negative number, which older
    rows may hold, never passes for one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _percent(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and 0 <= value <= 100 else None


def failed_count(summary: Any) -> int | None:
    """The reported number of failures; None when there is no usable count."""
    return _count(summary.get("failed")) if isinstance(summary, dict) else None


def snapshot_item(status: str, summary: Any) -> dict[str, Any]:
    """What the gate keeps of a reported item: its status and the readings requirements use
    (usable counts, the coverage percent, the reviewer), nothing else: the gate stores it on
    every approval request."""
    item: dict[str, Any] = {"status": status}
    if not isinstance(summary, dict):
        return item
    for name in _COUNTS:
        value = _count(summary.get(name))
        if value is not None:
            item[name] = value
    percent = _percent(summary.get("percent"))
    if percent is not None:
        item["percent"] = percent
    reviewer = summary.get("reviewer")
    if isinstance(reviewer, str) and reviewer.strip():
        item["reviewer"] = reviewer.strip()
    return item


# --- Requirements --------------------------------------------------------------------------------


@dataclass
class EvidenceRequirement:
    kind: str
    status: str
    max_failed: int | None
    rules: list[str] = field(default_factory=list)
    min_passed: int | None = None
    max_skipped: int | None = None
    min_coverage: float | None = None
    # Severity -> the most findings of it allowed; severities left out are not limited.
    max_findings: dict[str, int] | None = None
    # The reviewer must be none of the people `problem` is told may not review.
    distinct_reviewer: bool = False

    def describe(self) -> str:
        text = f"{self.kind} evidence with status '{self.status}'"
        parts = self.threshold_words()
        if not parts:
            return text
        if len(parts) == 1:
            return f"{text} and {parts[0]}"
        return f"{text}, {', '.join(parts[:-1])} and {parts[-1]}"

    def threshold_words(self) -> list[str]:
        parts = []
        if self.min_passed is not None:
            parts.append(f"at least {self.min_passed} passed")
        if self.max_failed is not None:
            parts.append(f"at most {self.max_failed} failed")
        if self.max_skipped is not None:
            parts.append(f"at most {self.max_skipped} skipped")
        if self.min_coverage is not None:
            parts.append(f"coverage of at least {_number(self.min_coverage)}%")
        for severity, limit in _ordered(self.max_findings):
            parts.append(f"at most {limit} {severity} finding{'s' if limit != 1 else ''}")
        if self.distinct_reviewer:
            parts.append("a reviewer other than the requester, pipeline trigger or change author")
        return parts


def _ordered(findings: dict[str, int] | None) -> list[tuple[str, int]]:
    """Severity limits from the most to the least severe, whatever order the policy used."""
    findings = findings or {}
    return [(s, findings[s]) for s in SEVERITIES if s in findings]


def _number(value: float) -> str:
    """80.0 as 80, 72.5 as 72.5."""
    return f"{value:g}"


def validate_requirement(raw: Any, where: str) -> None:
    """Refuse a malformed `evidence:` item of a rule; `where` names the rule for the message."""
    # A kind is a name: a list there (`kind: [tests]`) would pass for one here and fail every
    # evaluation of the policy later.
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str) or not raw["kind"]:
        raise EvidenceError(f"{where}: each evidence requirement needs a 'kind'.")
    unknown = sorted(set(raw) - EVIDENCE_KEYS, key=str)
    if unknown:
        raise EvidenceError(f"{where}, evidence: unknown key(s) {', '.join(map(str, unknown))}.")
    kind = raw["kind"]
    here = f"{where}, evidence '{kind}'"
    _check_fits_kind(raw, kind, here)
    for name in ("min_passed", "max_failed", "max_skipped"):
        if raw.get(name) is not None:
            _whole(raw[name], f"{here} {name}")
    if raw.get("min_coverage") is not None and _percent(raw["min_coverage"]) is None:
        raise EvidenceError(
            f"{here} min_coverage must be a number from 0 to 100, got {raw['min_coverage']!r}."
        )
    if raw.get("max_findings") is not None:
        _check_findings(raw["max_findings"], f"{here} max_findings")
    if not isinstance(raw.get("distinct_reviewer", False), bool):
        raise EvidenceError(
            f"{here} distinct_reviewer must be true or false, got {raw['distinct_reviewer']!r}."
        )


def _check_fits_kind(raw: dict, kind: str, where: str) -> None:
    """A documented kind never reports what a foreign threshold reads: such a rule would block
    every release for ever, so it is refused when the policy is saved."""
    definition = KINDS.get(kind)
    if definition is None:
        return
    foreign = [name for name in THRESHOLDS if name in raw and name not in definition.thresholds]
    if foreign:
        allowed = ", ".join(sorted(definition.thresholds))
        raise EvidenceError(
            f"{where}: {', '.join(foreign)} does not apply to {kind} evidence; use {allowed}."
        )


def _whole(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EvidenceError(f"{where} must be a whole number of at least 0, got {value!r}.")


def _check_findings(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not value:
        raise EvidenceError(
            f"{where} must map severities to the most findings allowed, e.g. {{critical: 0}}."
        )
    unknown = sorted(str(s) for s in value if s not in SEVERITIES)
    if unknown:
        raise EvidenceError(
            f"{where}: unknown severity {', '.join(unknown)}; use {', '.join(SEVERITIES)}."
        )
    for severity, limit in value.items():
        _whole(limit, f"{where} {severity}")


def merge_requirement(evidence: dict[str, EvidenceRequirement], raw: dict, rule_id: str) -> None:
    """Add one rule's requirement to those of the rules before it; the strictest wins."""
    kind = raw["kind"]
    incoming = EvidenceRequirement(
        kind=kind,
        status=raw.get("status", "passed"),
        max_failed=raw.get("max_failed"),
        rules=[rule_id],
        min_passed=raw.get("min_passed"),
        max_skipped=raw.get("max_skipped"),
        min_coverage=raw.get("min_coverage"),
        max_findings=dict(raw["max_findings"]) if raw.get("max_findings") else None,
        # bool() of a None default is False too: a mutant dropping the default is equivalent.
        distinct_reviewer=bool(raw.get("distinct_reviewer", False)),
    )
    current = evidence.get(kind)
    if current is None:
        evidence[kind] = incoming
        return
    current.max_failed = _strictest(min, current.max_failed, incoming.max_failed)
    current.max_skipped = _strictest(min, current.max_skipped, incoming.max_skipped)
    current.min_passed = _strictest(max, current.min_passed, incoming.min_passed)
    current.min_coverage = _strictest(max, current.min_coverage, incoming.min_coverage)
    current.max_findings = _merge_findings(current.max_findings, incoming.max_findings)
    current.distinct_reviewer = current.distinct_reviewer or incoming.distinct_reviewer
    current.rules.append(rule_id)


def _strictest(pick: Any, *limits: Any) -> Any:
    """`pick` (min for a ceiling, max for a floor) of the limits set; None when none is."""
    given = [limit for limit in limits if limit is not None]
    return pick(given) if given else None


def _merge_findings(
    current: dict[str, int] | None, incoming: dict[str, int] | None
) -> dict[str, int] | None:
    if not current or not incoming:
        return current or incoming
    merged = dict(current)
    for severity, limit in incoming.items():
        merged[severity] = min(limit, merged.get(severity, limit))
    return merged


def problem(
    requirement: EvidenceRequirement,
    item: dict | None,
    *,
    conflicted: set[str] | frozenset[str] = frozenset(),
) -> str | None:
    """Why `item` (a `snapshot_item`, or None when nothing was reported) does not meet
    `requirement`, in words a person can act on; None when it does.

    `conflicted` holds the usernames who may not review this release (its requester, whoever
    triggered the pipeline, the author of its change), for `distinct_reviewer`."""
    kind = requirement.kind
    if item is None:
        return f"Missing required evidence: {requirement.describe()}."
    if item["status"] != requirement.status:
        return (
            f"Evidence '{kind}' is '{item['status']}'; the policy requires '{requirement.status}'."
        )
    problems = [
        *_count_problems(requirement, item),
        *_finding_problems(requirement, item),
        _coverage_problem(requirement, item),
        _reviewer_problem(requirement, item, conflicted),
    ]
    found = [p for p in problems if p]
    return " ".join(found) if found else None


def _count_problems(requirement: EvidenceRequirement, item: dict) -> list[str | None]:
    kind = requirement.kind
    checks = (
        ("passed", requirement.min_passed, "at least {} required"),
        ("failed", requirement.max_failed, "at most {} allowed"),
        ("skipped", requirement.max_skipped, "at most {} allowed"),
    )
    problems = []
    for name, limit, wording in checks:
        if limit is None:
            continue
        value = item.get(name)  # snapshots taken before a count was read lack its key
        if value is None:
            problems.append(
                f"Evidence '{kind}' does not report a '{name}' count; the policy requires one."
            )
        elif (value < limit) if name == "passed" else (value > limit):
            problems.append(f"Evidence '{kind}' reports {value} {name}; {wording.format(limit)}.")
    return problems


def _finding_problems(requirement: EvidenceRequirement, item: dict) -> list[str]:
    kind, problems = requirement.kind, []
    for severity, limit in _ordered(requirement.max_findings):
        value = item.get(severity)
        if value is None:
            problems.append(
                f"Evidence '{kind}' does not report a '{severity}' count; the policy requires one."
            )
        elif value > limit:
            problems.append(
                f"Evidence '{kind}' reports {value} {severity} finding{'s' if value != 1 else ''}; "
                f"at most {limit} allowed."
            )
    return problems


def _coverage_problem(requirement: EvidenceRequirement, item: dict) -> str | None:
    limit = requirement.min_coverage
    if limit is None:
        return None
    percent = item.get("percent")
    if percent is None:
        return (
            f"Evidence '{requirement.kind}' does not report a coverage 'percent'; "
            f"the policy requires at least {_number(limit)}%."
        )
    if percent < limit:
        return (
            f"Evidence '{requirement.kind}' reports {_number(percent)}% coverage; "
            f"at least {_number(limit)}% required."
        )
    return None


def _reviewer_problem(
    requirement: EvidenceRequirement, item: dict, conflicted: set[str] | frozenset[str]
) -> str | None:
    if not requirement.distinct_reviewer:
        return None
    reviewer = item.get("reviewer")
    if not reviewer:
        return (
            f"Evidence '{requirement.kind}' does not name a 'reviewer'; the policy requires "
            "a reviewer other than the requester, pipeline trigger or change author."
        )
    if reviewer.casefold() in {name.casefold() for name in conflicted}:
        return (
            f"Evidence '{requirement.kind}' was reviewed by {reviewer}, who requested, triggered "
            "or authored this release; the policy requires another reviewer."
        )
    return None
