"""Compliance checklists (SOX, HIPAA, PCI...): what each checkpoint of a release's plan holds,
and whether it is met, from the same snapshot the gate reads.

A policy rule with `checkpoint: PCI` puts every requirement it makes on the PCI checklist: its
stages (met once approved), its evidence (met when the latest item meets the requirement), its
built-in checks (`require: checks:`). The gate names the checkpoint in the reasons it gives for
an unmet item; the release page shows each checklist item as met, pending or missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from approvals.models import ApprovalStage, Decision, Evidence, Release
from changes.models import ChangeRecord
from governance.policy.engine import CHECKS, Plan
from governance.policy.evidence import problem as evidence_problem


@dataclass
class Item:
    text: str
    state: str  # met, pending or missing
    detail: str = ""


@dataclass
class Checklist:
    name: str
    items: list[Item] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return all(item.state == "met" for item in self.items)


def snapshot_checks(plan: Plan, release: Release, evidence: list[Evidence], stages) -> dict:
    """The checks a snapshot keeps (those that read decisions and evidence): check -> the
    problem, or None when it holds. `stages` come with their standing decisions."""
    checks: dict[str, str | None] = {}
    if "distinct_people" in plan.checks:
        checks["distinct_people"] = _distinct_people(release, stages)
    if "evidence_retained" in plan.checks:
        checks["evidence_retained"] = (
            None if evidence else "No evidence is attached to this release, so none is retained."
        )
    return checks


def _distinct_people(release: Release, stages) -> str | None:
    conflicted = release.conflicted_user_ids()
    seen: dict[int, str] = {}
    for stage in stages:
        for decision in stage.decisions.all():
            if decision.verdict != Decision.Verdict.APPROVE:
                continue
            seat = decision.on_behalf_of_id or decision.approver_id
            if seat in conflicted or decision.approver_id in conflicted:
                return (
                    "An approval came from the requester, the pipeline's trigger or the "
                    "change's author."
                )
            if seat in seen and seen[seat] != stage.name:
                return f"One person approved both {seen[seat]} and {stage.name}."
            seen[seat] = stage.name
    return None


def check_problems(plan: Plan, snapshot: dict, change: ChangeRecord) -> dict[str, str | None]:
    """Every check the plan asks for: the problem, or None when it holds now."""
    problems = dict(snapshot.get("checks", {}))
    for check in plan.checks:
        if check == "change_record":
            problems[check] = (
                None
                if change.is_approvable
                else f"Change record {change.ref} is {change.get_state_display().lower()}."
            )
        problems.setdefault(check, f"{CHECKS[check]}: not yet checked.")
    return problems


def labels(plan: Plan) -> dict[tuple[str, str], list[str]]:
    """(kind, key) of each requirement -> the checkpoints whose checklists hold it."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, items in plan.checkpoints.items():
        for item in items:
            found.setdefault((item["kind"], item["key"]), []).append(name)
    return found


def labelled(text: str, names: list[str]) -> str:
    return f"{' / '.join(names)}: {text}" if names else text


def checklists(plan: Plan, snapshot: dict, change: ChangeRecord) -> list[Checklist]:
    """The release page's checklists, one per checkpoint, in the order the policy names them."""
    stages = {stage.get("key"): stage for stage in snapshot.get("stages", [])}
    requirements = {requirement.kind: requirement for requirement in plan.evidence}
    evidence = snapshot.get("evidence", {})
    conflicted = set(snapshot.get("conflicted", []))
    problems = check_problems(plan, snapshot, change)
    result = []
    for name, items in plan.checkpoints.items():
        checklist = Checklist(name)
        for item in items:
            kind, key = item["kind"], item["key"]
            if kind == "stage":
                checklist.items.append(_stage_item(key, stages.get(key)))
            elif kind == "evidence" and key in requirements:
                requirement = requirements[key]
                why = evidence_problem(requirement, evidence.get(key), conflicted=conflicted)
                state = "missing" if why else "met"
                checklist.items.append(Item(requirement.describe().capitalize(), state, why or ""))
            elif kind == "check" and key == "itsm_change":
                state = "met" if change.is_authorised else "missing"
                checklist.items.append(
                    Item(f"Change {change.ref} authorised in the ITSM tool", state)
                )
            elif kind == "check":
                why = problems.get(key)
                checklist.items.append(Item(CHECKS[key], "missing" if why else "met", why or ""))
        result.append(checklist)
    return result


def _stage_item(key: str, stage: dict | None) -> Item:
    if stage is None:
        return Item(f"Stage {key}", "missing", "Not in this request's plan.")
    text = f"{stage['name']} ({stage['required']} approval(s))"
    if stage["status"] == ApprovalStage.Status.APPROVED:
        people = ", ".join(a["user"] for a in stage["approvals"])
        return Item(text, "met", f"Approved by {people}.")
    if stage["status"] in (ApprovalStage.Status.WAITING, ApprovalStage.Status.ACTIVE):
        return Item(text, "pending", f"{len(stage['approvals'])} of {stage['required']} so far.")
    return Item(text, "missing", f"The stage is {stage['status']}.")
