"""What the editor page shows: the draft's diff line by line, and the validation verdict."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from governance.policy import engine
from governance.policy.models import Policy

# Bootstrap's own colours, so the diff needs no style of its own (and no inline style).
LINE_CLASSES = {
    "+": "diff-added text-success-emphasis bg-success-subtle",
    "-": "diff-removed text-danger-emphasis bg-danger-subtle",
    "@": "diff-hunk text-primary-emphasis",
    " ": "diff-context",
}


@dataclass(frozen=True)
class DiffLine:
    text: str
    css: str


@dataclass(frozen=True)
class Verdict:
    """The draft is valid (with its rule count) or not (with the place and the message)."""

    rule_count: int | None = None
    message: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def valid(self) -> bool:
        return self.rule_count is not None


def diff_lines(policy_obj: Policy, draft: str) -> list[DiffLine]:
    """The draft against the published version as a unified diff; empty when unchanged."""
    lines = difflib.unified_diff(
        policy_obj.source.splitlines(),
        draft.splitlines(),
        fromfile=f"{policy_obj.slug} v{policy_obj.version} (published)",
        tofile="draft",
        lineterm="",
    )
    return [DiffLine(text, _css(text)) for text in lines]


def _css(text: str) -> str:
    if text.startswith(("+++", "---")):
        return "diff-file fw-semibold"
    return LINE_CLASSES.get(text[:1], LINE_CLASSES[" "])


def verdict(source: str) -> Verdict:
    """Parse the draft as publishing would; the error's place when it does not parse."""
    try:
        rules = engine.parse(source)
    except engine.PolicyError as exc:
        return Verdict(
            message=getattr(exc, "message", None) or str(exc),
            line=getattr(exc, "line", None),
            column=getattr(exc, "column", None),
        )
    return Verdict(rule_count=len(rules))
