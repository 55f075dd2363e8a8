"""Display data for approval pages, computed here so that templates hold no logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone

from approvals.authority import decision_capacity
from approvals.checkpoints import Checklist, checklists
from approvals.gate import GateResult, evaluate_gate
from approvals.models import ApprovalStage, Decision, Deployment, Release
from approvals.services import may_withdraw
from approvals.services.requests import CLOSED
from approvals.vendors import VendorSla, vendor_sla
from approvals.verification.presenters import DeploymentView, deployment_views
from governance.models import Team, User
from governance.policy.engine import TEAM_RULES, Plan

STATUS_STYLES = {
    "approved": "success",
    "deployed": "primary",
    "unapproved": "danger",
    "pending": "warning",
    "rejected": "danger",
    "blocked": "danger",
    "expired": "secondary",
    "withdrawn": "secondary",
    "active": "warning",
    "waiting": "light",
    "cancelled": "secondary",
    # Verification runs and background reports.
    "passed": "success",
    "failed": "danger",
    "queued": "light",
    "running": "warning",
    "done": "success",
}


@dataclass
class PersonView:
    user: User
    available: bool
    local_time: str
    hours: str
    availability: str


@dataclass
class StageView:
    stage: ApprovalStage
    css: str
    approvers: list[PersonView]
    decisions: list[Decision]
    rules: list[dict]
    progress_percent: int
    overdue: bool
    team_note: str = ""
    teams_missing: list[str] = field(default_factory=list)
    ownership_conflict: str = ""


@dataclass
class ReleasePage:
    release: Release
    gate: GateResult
    gate_css: str
    plan: Plan
    stages: list[StageView]
    evidence: list
    # The newest item of each kind is the one the gate reads; earlier ones are superseded.
    counting_evidence: set[int]
    decisions: list[Decision]
    can_decide: bool
    decide_stage: ApprovalStage | None
    on_behalf_of: User | None
    blocker: str | None
    vendor_sla: VendorSla | None
    matched_rules: list[dict] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    unapproved_deployments: list[Deployment] = field(default_factory=list)
    # Each deployment with its verification window, result and health checks, for display.
    deployment_views: list[DeploymentView] = field(default_factory=list)
    trigger_alias: str = ""
    can_withdraw: bool = False
    can_request_again: bool = False
    revocable: Decision | None = None
    asked_again: Release | None = None
    checklists: list[Checklist] = field(default_factory=list)

    @property
    def stage_groups(self) -> list[list[StageView]]:
        """Stages in the order they open; those sharing an `order` are open side by side."""
        groups: dict[int, list[StageView]] = {}
        for view in self.stages:
            groups.setdefault(view.stage.order, []).append(view)
        return [groups[order] for order in sorted(groups)]


def person_view(user: User, now: datetime) -> PersonView:
    local = now.astimezone(ZoneInfo(user.time_zone))
    available = user.is_available_at(now)
    if available:
        availability = f"working now, until {user.working_hours_end:02d}:00 local"
    else:
        availability = (
            f"off hours ({local:%a %H:%M} local), works from {user.working_hours_start:02d}:00"
        )
    return PersonView(
        user=user,
        available=available,
        local_time=f"{local:%H:%M} {user.time_zone}",
        hours=f"{user.working_hours_start:02d}:00-{user.working_hours_end:02d}:00",
        availability=availability,
    )


def release_page(release: Release, viewer: User) -> ReleasePage:
    """Everything the release page shows, from a release loaded with `for_page()`."""
    now = timezone.now()
    gate = evaluate_gate(release, now=now)
    plan = Plan.from_dict(release.approval.plan)
    rules = {r["id"]: r for r in plan.matched_rules}
    teams = release.service.owning_teams()
    stages = [_stage_view(s, rules, now, teams) for s in release.approval.stages.all()]
    capacity = decision_capacity(release, release.approval, viewer, now)
    deployments = list(release.deployments.all())
    evidence = list(release.evidence.all())  # oldest first, as the gate reads them
    return ReleasePage(
        release=release,
        gate=gate,
        gate_css=STATUS_STYLES.get(gate.status, "secondary"),
        plan=plan,
        stages=stages,
        evidence=evidence,
        counting_evidence=set({item.kind: item.pk for item in evidence}.values()),
        decisions=sorted((d for s in stages for d in s.decisions), key=lambda d: d.created_at),
        can_decide=capacity.stage is not None,
        decide_stage=capacity.stage,
        on_behalf_of=capacity.on_behalf_of,
        blocker=capacity.blocker,
        vendor_sla=vendor_sla(release, now),
        matched_rules=plan.matched_rules,
        deployments=deployments,
        unapproved_deployments=[d for d in deployments if not d.approved],
        deployment_views=deployment_views(deployments, now),
        trigger_alias=_trigger_alias(release),
        can_withdraw=release.approval.status == "pending" and may_withdraw(release, viewer),
        revocable=_revocable(release, stages, viewer),
        checklists=checklists(plan, release.approval.gate_snapshot or {}, release.change),
        **_again_view(release, viewer),
    )


def _revocable(release: Release, stages: list[StageView], viewer: User) -> Decision | None:
    """The viewer's approval on the open stage, which they may still take back."""
    if release.approval.status != "pending":
        return None
    mine = (
        decision
        for view in stages
        if view.stage.status == ApprovalStage.Status.ACTIVE
        for decision in view.decisions
        if decision.approver_id == viewer.pk and decision.verdict == Decision.Verdict.APPROVE
    )
    return next(mine, None)


def _again_view(release: Release, viewer: User) -> dict:
    """Whether the viewer may ask again for this closed request, or where it was asked again."""
    if release.approval.status not in CLOSED:
        return {}
    asked_again = release.next_requests.first()
    return {
        "asked_again": asked_again,
        "can_request_again": asked_again is None and may_withdraw(release, viewer),
    }


def _trigger_alias(release: Release) -> str:
    """The name the pipeline sent, when it was not the person's username as such (shown with
    anything outside ASCII escaped, so a reader sees why it matched)."""
    name, person = release.triggered_by_name, release.triggered_by
    if not person or name == person.username:
        return ""
    return name.encode("ascii", "backslashreplace").decode()


def _stage_view(
    stage: ApprovalStage, rules: dict[str, dict], now: datetime, teams: list[Team]
) -> StageView:
    decided = {d.approver_id for d in stage.decisions.all()}
    people = [person_view(u, now) for u in stage.eligible_approvers.all()]
    people.sort(key=lambda p: (p.user.pk in decided, not p.available, p.user.username))
    return StageView(
        stage=stage,
        css=STATUS_STYLES.get(stage.status, "secondary"),
        approvers=people,
        decisions=list(stage.decisions.all()),
        rules=[rules.get(r, {"id": r, "description": "", "when": ""}) for r in stage.rules],
        progress_percent=min(100, int(100 * stage.approval_count / max(stage.required_count, 1))),
        overdue=bool(stage.due_at and stage.status == "active" and stage.due_at < now),
        **_team_view(stage, teams),
    )


def _team_view(stage: ApprovalStage, teams: list[Team]) -> dict:
    """How a shared service's owning teams decide this stage, or the conflict if nothing says."""
    if stage.approvers == "cab":
        return {}
    names = [t.name for t in teams]
    if stage.team_rule == "primary":
        return {"team_note": f"Decided by the primary owning team ({names[0]})."}
    if stage.team_rule:
        missing = stage.teams_still_needed() if stage.status == "active" else []
        return {
            "team_note": f"{TEAM_RULES[stage.team_rule].capitalize()}: {', '.join(names)}.",
            "teams_missing": [t.name for t in teams if t.slug in missing],
        }
    if len(teams) > 1:
        return {
            "ownership_conflict": f"Owned by {', '.join(names)}, and no policy rule says how "
            "these teams decide, so any eligible approver counts. Administrators: add "
            "`teams: any | each | primary` to the stage's rule."
        }
    return {}


def release_status(release: Release) -> str:
    """The one word shown in lists: unapproved (deployed without the gate's approval, a finding
    that stays), failed (its latest deployment failed or failed verification), deployed, or
    the approval's status."""
    if release.unapproved_deployment_at:
        return "unapproved"
    if getattr(release, "last_deployment_status", "") == Deployment.Status.FAILED:
        return "failed"
    return "deployed" if release.deployed_at else release.approval.status
