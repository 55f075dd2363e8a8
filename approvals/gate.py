"""The gate: may this release (this digest) go to its environment now?

Computed live at every call, so a precondition that stopped holding since the approval (a
withdrawn change record, evidence that turned red, an expiry) blocks at once. Status precedence:
rejected > expired > blocked > pending > approved.

Pipelines ask the gate far more often than anything changes, so the picture of stages, decisions
and evidence it needs is kept as a snapshot on the approval request (`gate_snapshot`), rebuilt
by `refresh_snapshot` inside every service transaction that changes one of them. The gate then
reads one row with its change record, whatever the size of the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, models
from django.utils import timezone

from approvals import checkpoints
from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Evidence, Release
from changes.freezes.services import freeze_blockers
from changes.incidents.selectors import incident_hold_reasons
from changes.models import ChangeRecord
from governance.models import User
from governance.policy.engine import Plan
from governance.policy.evidence import problem as evidence_problem
from governance.policy.evidence import snapshot_item


@dataclass
class GateResult:
    status: str
    reasons: list[str] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    digest: str = ""
    # The reasons that are freezes and incident holds: teams hear of those (not in the answer).
    holds: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "stages": self.stages,
            "digest": self.digest,
        }


def evaluate_gate(
    release: Release, *, digest: str | None = None, now: datetime | None = None
) -> GateResult:
    """Evaluate the gate for a release loaded with its change record and approval request."""
    now = now or timezone.now()
    approval: ApprovalRequest = release.approval
    snapshot = approval.gate_snapshot or {}
    stages = snapshot.get("stages", [])
    result = GateResult(
        status="approved",
        stages=[_gate_stage(stage, position) for position, stage in enumerate(stages, start=1)],
        digest=release.digest,
    )
    # A withdrawn request is as final as a rejected one; the reason names who withdrew it.
    if approval.status in (ApprovalRequest.Status.REJECTED, ApprovalRequest.Status.WITHDRAWN):
        result.status, result.reasons = "rejected", list(snapshot.get("rejections", []))
        return result
    expiry = _expiry_reason(approval, now)
    if expiry:
        result.status, result.reasons = "expired", [expiry]
        return result
    plan = Plan.from_dict(approval.plan)
    blockers = precondition_failures(release.change, plan, snapshot)
    excepted, outside = emergency_standing(release.change, now)
    blockers += outside
    result.holds = incident_hold_reasons(
        service_id=release.service_id,
        environment_risk=release.environment.risk,
        excepted=excepted,
    )
    result.holds += freeze_blockers(release, now, excepted=excepted)
    blockers += result.holds
    if digest is not None and digest != release.digest:
        blockers.insert(
            0,
            f"Digest {digest} is not the approved artifact ({release.digest}); "
            "a different digest needs a new approval request.",
        )
    if blockers:
        result.status, result.reasons = "blocked", blockers
        return result
    if approval.status == ApprovalRequest.Status.PENDING:
        result.status = "pending"
        result.reasons = [
            s["waiting"] for s in stages if s["status"] == ApprovalStage.Status.ACTIVE
        ]
        return result
    result.reasons = [
        f"Approved; valid until {approval.valid_until:%Y-%m-%d %H:%M} UTC."
        if approval.valid_until
        else "Approved."
    ]
    return result


def _gate_stage(stage: dict, position: int) -> dict:
    # Snapshots written before stages had keys and orders ran one stage after another.
    return {
        "key": stage.get("key", ""),
        "order": stage.get("order", position),
        **{key: stage[key] for key in STAGE_FIELDS},
    }


def precondition_failures(change: ChangeRecord, plan: Plan, snapshot: dict) -> list[str]:
    """Everything that must hold at deploy time, in words a person can act on; a requirement
    on a compliance checklist is named with its checkpoint (e.g. "PCI: ...")."""
    evidence = snapshot.get("evidence", {})
    on_lists = checkpoints.labels(plan)
    failures = [*plan.errors, *plan.blocks]
    # Every release needs a live change record; a checklist that names it labels the reason.
    if not change.is_approvable:
        failures.append(
            checkpoints.labelled(
                f"Change record {change.ref} is {change.get_state_display().lower()}; "
                "nothing of an ended change may be deployed.",
                on_lists.get(("check", "change_record"), []),
            )
        )
    elif plan.itsm_change and not change.is_authorised:
        failures.append(
            checkpoints.labelled(
                f"Change record {change.ref} is {change.get_state_display().lower()} in the "
                "ITSM tool; the policy requires it to be authorised there.",
                on_lists.get(("check", "itsm_change"), []),
            )
        )
    conflicted = set(snapshot.get("conflicted", []))
    # (Equivalent mutants, make mutate: a label list defaulting to None, here, for the checks
    # below and for the change record and itsm_change above, labels nothing either, as
    # checkpoints.labelled reads it.)
    for requirement in plan.evidence:
        problem = evidence_problem(
            requirement, evidence.get(requirement.kind), conflicted=conflicted
        )
        if problem:
            failures.append(
                checkpoints.labelled(problem, on_lists.get(("evidence", requirement.kind), []))
            )
    for check, problem in checkpoints.check_problems(plan, snapshot, change).items():
        if problem and check != "change_record":  # said above, labelled
            failures.append(checkpoints.labelled(problem, on_lists.get(("check", check), [])))
    return failures


def emergency_standing(change: ChangeRecord, now: datetime) -> tuple[bool, list[str]]:
    """Whether `change` holds an emergency exception in force at `now`, and why not when it is
    an emergency change without one. One query, for emergency changes only.

    Inside its exception an emergency change passes hard freezes and incident holds; outside it
    (never declared, expired, ended) its releases are held like any, and blocked themselves:
    the emergency path is a time-bound exception, never a standing one.
    """
    if change.type != ChangeRecord.Type.EMERGENCY:
        return False, []
    exception = (
        EmergencyException.objects.filter(change_id=change.pk).only("starts_at", "ends_at").first()
    )
    if exception is not None and exception.in_force_at(now):
        return True, []
    if exception is None:
        reason = (
            f"Change {change.ref} is an emergency change without a declared emergency; "
            "declare the emergency (it grants a time-bound exception) or request under a "
            "normal change."
        )
    # (Equivalent mutant, make mutate: `>=`, since an exception in force at its start returned
    # above; only one ending where it starts would tell.)
    elif exception.starts_at > now:
        reason = (
            f"The emergency exception for {change.ref} starts at "
            f"{exception.starts_at:%Y-%m-%d %H:%M} UTC; releases before it are held."
        )
    else:
        reason = (
            f"The emergency exception for {change.ref} ended at "
            f"{exception.ends_at:%Y-%m-%d %H:%M} UTC; releases after it need the normal path: "
            "request under a normal change, or declare a new emergency."
        )
    return False, [reason]


def _expiry_reason(approval: ApprovalRequest, now: datetime) -> str | None:
    if approval.status == ApprovalRequest.Status.EXPIRED:
        return "The approval request expired; request a new approval."
    if approval.status == ApprovalRequest.Status.PENDING and approval.expires_at <= now:
        return f"No decision before {approval.expires_at:%Y-%m-%d %H:%M} UTC; the request expired."
    if (
        approval.status == ApprovalRequest.Status.APPROVED
        and approval.valid_until
        and approval.valid_until <= now
    ):
        return (
            f"The approval was valid until {approval.valid_until:%Y-%m-%d %H:%M} UTC; "
            "request a new approval."
        )
    return None


STAGE_FIELDS = ("name", "status", "required", "approvals")


def refresh_snapshot(approval: ApprovalRequest) -> None:
    """Rebuild the gate's snapshot from the stored rows. Call inside the changing transaction."""
    snapshot = build_snapshot(approval)
    ApprovalRequest.objects.filter(pk=approval.pk).update(gate_snapshot=snapshot)
    approval.gate_snapshot = snapshot


def build_snapshot(approval: ApprovalRequest) -> dict:
    """The snapshot of one request, read from the stored rows."""
    return _snapshot(_with_snapshot_data(ApprovalRequest.objects.filter(pk=approval.pk)).get())


def rebuild_snapshots(approvals: models.QuerySet, batch: int = 500) -> int:
    """Rebuild the snapshots of many requests in batches (repair, or after a bulk import).

    `batch` only bounds the memory used: any size rebuilds the same snapshots (so a mutant of
    its default is equivalent)."""
    done, remaining = 0, approvals.order_by("pk")
    while chunk := list(_with_snapshot_data(remaining)[:batch]):
        for approval in chunk:
            approval.gate_snapshot = _snapshot(approval)
        ApprovalRequest.objects.bulk_update(chunk, ["gate_snapshot"])
        done += len(chunk)
        remaining = approvals.filter(pk__gt=chunk[-1].pk).order_by("pk")
    return done


def refresh_stage_snapshots(stage_ids: list[int]) -> None:
    """Rewrite these stages' entries in their requests' snapshots, leaving the rest as it is
    (a sweep changed only who may decide them). Entries are found by stage key; a snapshot
    without the stage's entry (or one written before entries had keys) is rebuilt whole."""
    stages = list(_stages_with_snapshot_data().filter(pk__in=stage_ids))
    # (Equivalent mutant, make mutate: only() without "pk" still reads the pk.)
    approvals = {
        a.pk: a
        for a in ApprovalRequest.objects.filter(pk__in={s.request_id for s in stages}).only(
            "pk", "gate_snapshot"
        )
    }
    whole = set()
    for stage in stages:
        entries = approvals[stage.request_id].gate_snapshot.get("stages", [])
        index = next((i for i, e in enumerate(entries) if e.get("key") == stage.key), None)
        if index is not None and entries[index].get("name") == stage.name:
            entries[index] = _stage_snapshot(stage)
        else:
            whole.add(stage.request_id)
    _store_snapshots([a for pk, a in approvals.items() if pk not in whole])
    if whole:
        rebuild_snapshots(ApprovalRequest.objects.filter(pk__in=whole))


def _store_snapshots(approvals: list[ApprovalRequest]) -> None:
    """One plain UPDATE per request, sent together: bulk_update's CASE expression over JSON
    values costs more to build than the statements cost to run."""
    field = ApprovalRequest._meta.get_field("gate_snapshot")
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {ApprovalRequest._meta.db_table} SET {field.column} = %s WHERE id = %s",
            [(field.get_db_prep_value(a.gate_snapshot, connection), a.pk) for a in approvals],
        )


def _stages_with_snapshot_data() -> models.QuerySet:
    # People are read for their names only: a sweep rebuilding thousands of snapshots would
    # otherwise build tens of thousands of whole user rows it never looks at.
    names = User.objects.only("pk", "username")
    decisions = (
        Decision.objects.select_related("approver")
        .only(*SNAPSHOT_DECISION_FIELDS, "approver__username")
        .order_by("created_at", "pk")
    )
    # In the order stages open (a stage added by re-planning may open before later ones).
    return ApprovalStage.objects.order_by("order", "position").prefetch_related(
        models.Prefetch("decisions", queryset=decisions),
        models.Prefetch("eligible_approvers", queryset=names),
    )


def _with_snapshot_data(approvals: models.QuerySet) -> models.QuerySet:
    stages = _stages_with_snapshot_data()
    return approvals.select_related(
        "withdrawn_by",
        "release__requested_by",
        "release__triggered_by",
        "release__change__author",
    ).prefetch_related(
        models.Prefetch("stages", queryset=stages),
        models.Prefetch(
            "release__evidence", queryset=Evidence.objects.order_by("created_at", "pk")
        ),
    )


SNAPSHOT_DECISION_FIELDS = (
    "stage",
    "request",
    "approver",
    "on_behalf_of",
    "verdict",
    "rationale",
    "created_at",
)


def _snapshot(approval: ApprovalRequest) -> dict:
    """Stages with their approvals, rejection reasons, the latest evidence of each kind, who
    may not review the release, and the checks that read decisions and evidence."""
    stages = list(approval.stages.all())
    evidence = approval.release.evidence.all()
    release = approval.release
    checks = checkpoints.snapshot_checks(
        Plan.from_dict(approval.plan), release, list(evidence), stages
    )
    return {
        "conflicted": sorted(
            {
                person.username
                for person in (release.requested_by, release.triggered_by, release.change.author)
                if person is not None
            }
            | ({release.triggered_by_name} if release.triggered_by_name else set())
        ),
        "checks": checks,
        "stages": [_stage_snapshot(stage) for stage in stages],
        "rejections": [
            f"Rejected by {d.approver.username} at {d.created_at:%Y-%m-%d %H:%M} UTC "
            f"({stage.name}): {d.rationale}"
            for stage in stages
            for d in stage.decisions.all()
            if d.verdict == Decision.Verdict.REJECT
        ]
        + _withdrawal(approval),
        "evidence": {item.kind: snapshot_item(item.status, item.summary) for item in evidence},
    }


def _withdrawal(approval: ApprovalRequest) -> list[str]:
    if approval.status != ApprovalRequest.Status.WITHDRAWN or approval.withdrawn_by is None:
        return []
    return [
        f"Withdrawn by {approval.withdrawn_by.username} at {approval.decided_at:%Y-%m-%d %H:%M} "
        f"UTC: {approval.withdrawal_reason}"
    ]


def _stage_snapshot(stage: ApprovalStage) -> dict:
    names = sorted(u.username for u in stage.eligible_approvers.all())
    who = ", ".join(names) if names else "nobody is eligible; ask an administrator"
    due = f", due {stage.due_at:%Y-%m-%d %H:%M} UTC" if stage.due_at else ""
    missing = stage.teams_still_needed()
    if missing:
        due += f"; still needs an approval from team(s): {', '.join(missing)}"
    return {
        "key": stage.key,
        "order": stage.order,
        "name": stage.name,
        "status": stage.status,
        "required": stage.required_count,
        "approvals": [
            {"user": d.approver.username, "at": d.created_at.isoformat()}
            for d in stage.decisions.all()
            if d.verdict == Decision.Verdict.APPROVE
        ],
        "waiting": (
            f"Waiting for {stage.name}: {stage.approval_count} of {stage.required_count} "
            f"approvals (eligible: {who}{due})."
        ),
    }
