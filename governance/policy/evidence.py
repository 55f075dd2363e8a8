"""Evidence requirements: what a policy's `require: evidence:` asks for, how requirements from
several rules combine (the strictest wins), and whether a reported item meets one.

The gate and the compliance report judge evidence here, from the same snapshot of an item
(`snapshot_item`), so a release is never "met" on one page and "missing" on another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVIDENCE_KEYS = {"kind", "status", "max_failed"}


class EvidenceError(ValueError):
    """An evidence requirement a policy cannot use; the engine turns it into a PolicyError."""


@dataclass
class EvidenceRequirement:
    kind: str
    status: str
    max_failed: int | None
    rules: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.kind} evidence with status '{self.status}'"
        if self.max_failed is not None:
            text += f" and at most {self.max_failed} failed"
        return text


def validate_requirement(raw: Any, where: str) -> None:
    """Refuse a malformed `evidence:` item of a rule; `where` names the rule for the message."""
    if not isinstance(raw, dict) or not raw.get("kind"):
        raise EvidenceError(f"{where}: each evidence requirement needs a 'kind'.")
    unknown = sorted(set(raw) - EVIDENCE_KEYS)
    if unknown:
        raise EvidenceError(f"{where}, evidence: unknown key(s) {', '.join(map(str, unknown))}.")
    if raw.get("max_failed") is not None:
        _count(raw["max_failed"], f"{where}, evidence '{raw['kind']}' max_failed")


def _count(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EvidenceError(f"{where} must be a whole number of at least 0, got {value!r}.")


def merge_requirement(
    evidence: dict[str, EvidenceRequirement], raw: dict, rule_id: str
) -> None:
    """Add one rule's requirement to those of the rules before it; the strictest wins."""
    kind = raw["kind"]
    incoming = EvidenceRequirement(
        kind=kind,
        status=raw.get("status", "passed"),
        max_failed=raw.get("max_failed"),
        rules=[rule_id],
    )
    current = evidence.get(kind)
    if current is None:
        evidence[kind] = incoming
        return
    limits = [m for m in (current.max_failed, incoming.max_failed) if m is not None]
    current.max_failed = min(limits) if limits else None
    current.rules.append(rule_id)


def snapshot_item(status: str, summary: Any) -> dict[str, Any]:
    """What the gate keeps of a reported item: its status and the counts requirements read."""
    return {"status": status, "failed": failed_count(summary)}


def failed_count(summary: Any) -> int | None:
    """The reported number of failures; None when there is no usable count (a boolean or a
    negative number, which older rows may hold, never passes for one)."""
    value = summary.get("failed") if isinstance(summary, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def problem(requirement: EvidenceRequirement, item: dict | None) -> str | None:
    """Why `item` (a `snapshot_item`, or None when nothing was reported) does not meet
    `requirement`, in words a person can act on; None when it does."""
    kind = requirement.kind
    if item is None:
        return f"Missing required evidence: {requirement.describe()}."
    if item["status"] != requirement.status:
        return (
            f"Evidence '{kind}' is '{item['status']}'; the policy requires '{requirement.status}'."
        )
    if requirement.max_failed is not None:
        failed = item["failed"]
        if failed is None:
            return f"Evidence '{kind}' does not report a 'failed' count; the policy requires one."
        if failed > requirement.max_failed:
            return (
                f"Evidence '{kind}' reports {failed} failed; "
                f"at most {requirement.max_failed} allowed."
            )
    return None
