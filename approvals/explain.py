"""Why a release's plan asks what it asks: each requirement with the policy rules (id and the
policy version they belong to) that made it, and the context values that made each rule's
condition true (`plan.deletes = 1`). Read from the plan frozen on the approval request, so the
answer is what decided the release, whatever the policy says today."""

from __future__ import annotations

from typing import Any

from approvals.models import Release
from governance.policy.engine import APPROVER_SOURCES, CHECKS, Plan, PolicyError, parse

_FLAGS = {
    "dual_control": "Dual control: one person counts in one stage only",
    "retro_review": "The CAB reviews the release afterwards",
    "itsm_change": "The change must be authorised in the ITSM tool",
}


def explain(release: Release) -> dict[str, Any]:
    approval = release.approval
    plan = Plan.from_dict(approval.plan)
    version = approval.policy_version
    matched = {rule["id"]: rule for rule in plan.matched_rules}
    setters = _flag_setters(version.source if version else "", matched)

    def rules(ids: list[str]) -> list[dict[str, Any]]:
        return [_rule(rule_id, matched, version.number if version else None) for rule_id in ids]

    requirements: list[dict[str, Any]] = [
        {
            "kind": "stage",
            "key": stage.key,
            "text": f"{stage.name}: {stage.count} distinct approval(s) from "
            f"{APPROVER_SOURCES.get(stage.approvers, stage.approvers)}",
            "order": stage.order,
            "rules": rules(stage.rules),
        }
        for stage in plan.stages
    ]
    requirements += [
        {
            "kind": "evidence",
            "key": requirement.kind,
            "text": requirement.describe(),
            "rules": rules(requirement.rules),
        }
        for requirement in plan.evidence
    ]
    requirements += [
        {"kind": "check", "key": check, "text": CHECKS[check], "rules": rules(ids)}
        for check, ids in plan.checks.items()
    ]
    requirements += [
        {"kind": "flag", "key": flag, "text": text, "rules": rules(setters.get(flag, []))}
        for flag, text in _FLAGS.items()
        if getattr(plan, flag)
    ]
    if plan.approval_valid_hours:
        requirements.append(
            {
                "kind": "validity",
                "key": "approval_valid_hours",
                "text": f"The approval is valid for {plan.approval_valid_hours} hours",
                "rules": rules(setters.get("approval_valid_hours", [])),
            }
        )
    requirements += [
        {"kind": "block", "key": "block", "text": text, "rules": rules(_block_rule(text))}
        for text in plan.blocks
    ]
    if plan.verification:
        window = plan.verification
        requirements.append(
            {
                "kind": "verification",
                "key": "verification",
                "text": f"Health is verified for {window['minutes']} minutes after a successful "
                f"deployment, every {window['interval_seconds']} seconds; a failure calls the "
                "rollback hook",
                "rules": rules(window["rules"]),
            }
        )
    return {
        "release": release.pk,
        "policy": f"{version.policy.slug}@v{version.number}" if version else None,
        "requirements": requirements,
        "slas": plan.slas,
        "checkpoints": plan.checkpoints,
        "standard_change": plan.standard_change,
        "notes": plan.notes,
        "errors": plan.errors,
    }


def _rule(label: str, matched: dict[str, dict], version: int | None) -> dict[str, Any]:
    """A rule as the plan names it: `rule-id`, `rule-id (SLA x)`, `standard:template`, or a
    freeze's own label."""
    rule_id = label.split(" (SLA ")[0]
    rule = matched.get(rule_id, {})
    found = {"id": rule_id, "version": version if rule else None}
    if label != rule_id:
        found["via"] = label[len(rule_id) :].strip(" ()")
    if rule:
        found.update(when=rule["when"], values=rule.get("values", {}))
    return found


def _flag_setters(source: str, matched: dict[str, dict]) -> dict[str, list[str]]:
    """Which matched rules set each flag or the approval's validity (the plan keeps only the
    result; the policy version it was planned with says which rules asked)."""
    if not source:
        return {}
    try:
        parsed = parse(source)
    except PolicyError:
        return {}
    setters: dict[str, list[str]] = {}
    for rule in parsed:
        if rule.id not in matched:
            continue
        for name in (*_FLAGS, "approval_valid_hours"):
            if rule.require.get(name):
                setters.setdefault(name, []).append(rule.id)
    return setters


def _block_rule(text: str) -> list[str]:
    # Blocks end with "(policy rule <id>)".
    marker = " (policy rule "
    return [text.rsplit(marker, 1)[1].rstrip(")")] if marker in text else []
