"""The approval workflow: request, evidence, decisions, expiry, deployments.

Every function here is the single path for its transition, used alike by the UI, the API and
integrations, so the segregation-of-duties rules hold on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from approvals.authority import Capacity, decision_capacity
from approvals.context import policy_context
from approvals.exceptions import (
    InvalidRequest,
    InvalidTransition,
    NotEligible,
    SelfApprovalForbidden,
    StepUpRequired,
)
from approvals.gate import evaluate_gate, refresh_snapshot
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Deployment, Evidence, Release
from changes.services import find_or_open_change
from governance import ledger
from governance.models import Delegation, Environment, Service, User
from governance.notifications import notify, route
from governance.policy import Plan, evaluate
from governance.selectors import administrators, eligible_approvers, person_named
from governance.services import active_policy_version
from governance.stepup import verify_step_up

EXPIRE_BATCH = 500


@dataclass
class ReleaseInput:
    """A validated approval request, as the API serializer or the UI form produce it."""

    service: Service
    environment: Environment
    version: str
    image: str
    digest: str
    change_ref: str
    change_type: str
    change_title: str
    pipeline_provider: str = ""
    pipeline_run_url: str = ""
    triggered_by: str = ""
    evidence: tuple[dict, ...] = ()
    planned_at: datetime | None = None


def request_approval(
    *, data: ReleaseInput, actor: User, idempotency_key: str | None = None
) -> tuple[Release, bool]:
    """Create a release and its approval request, the plan frozen on. Returns (release, created).

    A repeated `idempotency_key` from the same requester returns the first release unchanged.
    """
    if idempotency_key:
        existing = _idempotent_replay(actor, idempotency_key, data)
        if existing:
            return existing, False
    try:
        with transaction.atomic(), ledger.deferred():
            release = _create_release(data, actor, idempotency_key)
            _create_plan(release, actor)
    except IntegrityError:
        # A concurrent retry with the same key won the race: answer with its release.
        existing = _idempotent_replay(actor, idempotency_key, data) if idempotency_key else None
        if existing is None:
            raise
        return existing, False
    return release, True


def _idempotent_replay(actor: User, key: str, data: ReleaseInput) -> Release | None:
    release = (
        Release.objects.select_related("change")
        .filter(requested_by=actor, idempotency_key=key)
        .first()
    )
    if release is None:
        return None
    # Everything that identifies the release: a retry repeats it all, a new release differs.
    same = (
        release.service_id,
        release.environment_id,
        release.version,
        release.image,
        release.digest,
        release.change.ref,
    ) == (
        data.service.pk,
        data.environment.pk,
        data.version,
        data.image,
        data.digest,
        data.change_ref,
    )
    if not same:
        raise InvalidTransition(
            "This Idempotency-Key was already used for a different release; use a new key."
        )
    return release


def _create_release(data: ReleaseInput, actor: User, idempotency_key: str | None) -> Release:
    # Matched conservatively (look-alike names included): the person behind the pipeline never
    # approves the release. A name matching nobody is kept and shown as unresolved.
    triggered_by = person_named(data.triggered_by) if data.triggered_by else None
    author = triggered_by or (None if actor.is_service_account else actor)
    change = find_or_open_change(
        ref=data.change_ref,
        type=data.change_type,
        title=data.change_title,
        author=author,
        actor=actor,
    )
    release = Release.objects.create(
        service=data.service,
        environment=data.environment,
        version=data.version,
        image=data.image,
        digest=data.digest,
        change=change,
        requested_by=actor,
        triggered_by=triggered_by,
        triggered_by_name=data.triggered_by,
        pipeline_provider=data.pipeline_provider,
        pipeline_run_url=data.pipeline_run_url,
        idempotency_key=idempotency_key or None,
        planned_at=data.planned_at,
    )
    for item in data.evidence:
        Evidence.objects.create(release=release, reported_by=actor, **item)
    return release


def stage_people(release: Release, approvers: str, team_rule: str, teams: list) -> QuerySet[User]:
    """Who may decide a stage of `release`: the approver source (grants limited to other
    environments do not count), narrowed to the owning teams when the policy says so."""
    people = eligible_approvers(release.service, approvers, release.environment)
    if team_rule == "primary":
        return people.filter(teams=teams[0])
    if team_rule in ("any", "each"):
        return people.filter(teams__in=teams).distinct()
    return people


def _create_plan(release: Release, actor: User) -> ApprovalRequest:
    now = timezone.now()
    version = active_policy_version()
    evidence = list(release.evidence.all())
    if version is None:
        plan = Plan(errors=["No active policy; an administrator must publish one."])
    else:
        plan = evaluate(version.source, policy_context(release, evidence))
    approval = ApprovalRequest.objects.create(
        release=release,
        policy_version=version,
        plan=plan.to_dict(),
        dual_control=plan.dual_control,
        retro_review=plan.retro_review,
        requested_at=now,
        expires_at=now + timedelta(hours=settings.SIGNOFF_PENDING_TIMEOUT_HOURS),
    )
    conflicted = release.conflicted_user_ids()
    teams = release.service.owning_teams()
    for position, requirement in enumerate(plan.stages, start=1):
        team_rule = requirement.teams if requirement.approvers != "cab" else ""
        each = [t.slug for t in teams] if team_rule == "each" else []
        stage = ApprovalStage.objects.create(
            request=approval,
            position=position,
            key=requirement.key,
            name=requirement.name,
            approvers=requirement.approvers,
            # One approval per owning team at least, and never fewer than the policy's count.
            required_count=max(requirement.count, len(each)),
            step_up=requirement.step_up,
            sla_hours=requirement.sla_hours,
            rules=requirement.rules,
            team_rule=team_rule,
            teams_required=each,
        )
        people = stage_people(release, requirement.approvers, team_rule, teams)
        stage.eligible_approvers.set(people.exclude(pk__in=conflicted))
    ledger.append(
        kind="approval.requested",
        subject=f"release:{release.pk}",
        actor=actor.username,
        payload=_request_payload(release, approval, version),
    )
    _advance(approval, actor, now)
    refresh_snapshot(approval)
    return approval


def _request_payload(release: Release, approval: ApprovalRequest, version) -> dict:
    return {
        "service": release.service.slug,
        "environment": release.environment.slug,
        "version": release.version,
        "image": release.image,
        "digest": release.digest,
        "change": release.change.ref,
        "requested_by": release.requested_by.username,
        "triggered_by": release.triggered_by_name,
        "triggered_by_resolved": release.triggered_by.username if release.triggered_by else None,
        "policy": f"{version.policy.slug}@v{version.number}" if version else None,
        "plan": approval.plan,
    }


def _advance(approval: ApprovalRequest, actor: User, now) -> None:
    """Open the next waiting stage, or approve the request when none is left."""
    stage = approval.stages.filter(status=ApprovalStage.Status.WAITING).order_by("position").first()
    if stage is not None:
        due = now + timedelta(hours=stage.sla_hours) if stage.sla_hours else None
        ApprovalStage.objects.filter(pk=stage.pk).update(
            status=ApprovalStage.Status.ACTIVE, activated_at=now, due_at=due
        )
        stage.due_at = due
        _announce(approval, stage, now)
        return
    plan = Plan.from_dict(approval.plan)
    if plan.errors:
        return  # Nothing to approve until the policy problem is fixed; the gate says why.
    valid_until = (
        now + timedelta(hours=plan.approval_valid_hours) if plan.approval_valid_hours else None
    )
    _transition(approval, ApprovalRequest.Status.APPROVED, actor, now, valid_until=valid_until)


def _announce(approval: ApprovalRequest, stage: ApprovalStage, now) -> None:
    """Tell the people who can decide the newly opened stage, those at work first.

    Someone away with a delegation in force is represented by their delegate.
    """
    release = approval.release
    people = {u.pk: u for u in stage.eligible_approvers.all()}
    for delegation in (
        Delegation.objects.in_force(now)
        .covering(release.service)
        .filter(delegator__in=list(people))
        .select_related("delegate")
    ):
        people.pop(delegation.delegator_id, None)
        people[delegation.delegate_id] = delegation.delegate
    recipients, reason = route(people.values(), now)
    due = f" It is due {stage.due_at:%Y-%m-%d %H:%M} UTC." if stage.due_at else ""
    notify(
        people=recipients,
        subject=f"Approval needed: {release} ({stage.name})",
        body=f"{release.service.name} {release.version} is waiting for {stage.name} "
        f"({stage.required_count} distinct approval(s)). Change {release.change.ref}: "
        f"{release.change.title}.{due}",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason=reason,
    )


def _transition(approval: ApprovalRequest, status: str, actor: User | None, now, **fields) -> None:
    previous = approval.status
    ApprovalRequest.objects.filter(pk=approval.pk).update(status=status, decided_at=now, **fields)
    approval.status = status
    for name, value in fields.items():
        setattr(approval, name, value)
    ledger.append(
        kind="gate.transition",
        subject=f"release:{approval.release_id}",
        actor=actor.username if actor else "system",
        payload={
            "from": previous,
            "to": status,
            **{k: v.isoformat() if v else None for k, v in fields.items()},
        },
    )
    _tell_requester(approval, status, actor)


OUTCOME_WORDS = {
    ApprovalRequest.Status.APPROVED: "Approved",
    ApprovalRequest.Status.REJECTED: "Rejected",
    ApprovalRequest.Status.EXPIRED: "Expired",
}


def _tell_requester(approval: ApprovalRequest, status: str, actor: User | None) -> None:
    """The people who asked (the requester and whoever triggered the pipeline) hear the outcome,
    whatever the hour: they are waiting for it."""
    release = Release.objects.select_related(
        "service", "environment", "requested_by", "triggered_by"
    ).get(pk=approval.release_id)
    people = {p.pk: p for p in (release.requested_by, release.triggered_by) if p}
    if status == ApprovalRequest.Status.APPROVED:
        detail = "Every stage is approved; the gate answers 'approved' while preconditions hold."
    elif status == ApprovalRequest.Status.REJECTED:
        rejection = approval.decisions.filter(verdict=Decision.Verdict.REJECT).last()
        detail = f"Rejected by {actor}: {rejection.rationale}" if rejection else "Rejected."
    else:
        detail = "Nobody decided in time; request a new approval to deploy it."
    notify(
        people=[p for p in people.values() if not p.is_service_account],
        subject=f"{OUTCOME_WORDS[status]}: {release}",
        body=f"{release.service.name} {release.version} to {release.environment.name}: {detail}",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason="you requested this release",
    )


def add_evidence(
    *, release: Release, actor: User, kind: str, status: str, summary: dict, url: str = ""
) -> Evidence:
    """Attach a check result; the gate re-evaluates preconditions with it from now on."""
    with transaction.atomic(), ledger.deferred():
        evidence = Evidence.objects.create(
            release=release, kind=kind, status=status, summary=summary, url=url, reported_by=actor
        )
        ledger.append(
            kind="evidence.added",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={"kind": kind, "status": status, "summary": summary, "url": url},
        )
        refresh_snapshot(release.approval)
    return evidence


def record_decision(
    *,
    release: Release,
    actor: User,
    verdict: str,
    rationale: str,
    digest: str | None = None,
    step_up_code: str | None = None,
    channel: str = "ui",
) -> Decision:
    """Record an approve/reject on the open stage, counting distinct people under a row lock."""
    rationale = (rationale or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidRequest(
            "Decision must be 'approve' or 'reject'.",
            fields={"decision": ["Must be 'approve' or 'reject'."]},
        )
    if not rationale:
        raise InvalidRequest(
            "A rationale is required for every decision.",
            fields={"rationale": ["This field is required."]},
        )
    if digest is not None and digest != release.digest:
        raise InvalidRequest(
            f"You reviewed {digest}, but this release is {release.digest}.",
            fields={"digest": ["Does not match the release's artifact."]},
        )
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        # Locking the request serialises concurrent decisions: none is lost or counted twice.
        approval = ApprovalRequest.objects.select_for_update().get(release=release)
        approval = ApprovalRequest.objects.prefetch_related(
            "stages__eligible_approvers", "stages__decisions"
        ).get(pk=approval.pk)
        capacity = decision_capacity(release, approval, actor, now)
        if capacity.blocker:
            raise _refusal(capacity, release, approval, actor, now)
        stage, principal = capacity.stage, capacity.on_behalf_of
        method = _step_up(stage, actor, step_up_code)
        decision = Decision.objects.create(
            request=approval,
            stage=stage,
            approver=actor,
            on_behalf_of=principal,
            verdict=verdict,
            rationale=rationale,
            digest=release.digest,
            step_up_method=method,
            dual_control=approval.dual_control,
            channel=channel,
            created_at=now,
        )
        ledger.append(
            kind="decision.recorded",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "service": release.service.slug,
                "stage": stage.key,
                "verdict": verdict,
                "rationale": rationale,
                "digest": release.digest,
                "on_behalf_of": principal.username if principal else None,
                "step_up": method,
                "channel": channel,
            },
        )
        _apply_decision(approval, stage, decision, actor, now)
        refresh_snapshot(approval)
    return decision


def _refusal(capacity: Capacity, release: Release, approval: ApprovalRequest, actor: User, now):
    if approval.status != ApprovalRequest.Status.PENDING or approval.expires_at <= now:
        return InvalidTransition(capacity.blocker)
    if actor.pk in release.conflicted_user_ids():
        return SelfApprovalForbidden(capacity.blocker)
    return NotEligible(capacity.blocker)


def _step_up(stage: ApprovalStage, actor: User, code: str | None) -> str:
    if not stage.step_up:
        return ""
    method = verify_step_up(actor, code)
    if method is None:
        raise StepUpRequired(
            f"{stage.name} requires a fresh one-time code from your authenticator app. "
            "Enrol one on your profile page if you have none.",
            fields={"step_up_code": ["A valid one-time code is required."]},
        )
    return method


def _apply_decision(
    approval: ApprovalRequest, stage: ApprovalStage, decision: Decision, actor: User, now
) -> None:
    if decision.verdict == Decision.Verdict.REJECT:
        ApprovalStage.objects.filter(pk=stage.pk).update(
            status=ApprovalStage.Status.REJECTED, completed_at=now
        )
        approval.stages.filter(status=ApprovalStage.Status.WAITING).update(
            status=ApprovalStage.Status.CANCELLED
        )
        _transition(approval, ApprovalRequest.Status.REJECTED, actor, now)
        return
    count = (
        stage.decisions.filter(verdict=Decision.Verdict.APPROVE)
        .values("approver")
        .distinct()
        .count()
    )
    done = count >= stage.required_count and not stage.teams_still_needed()
    ApprovalStage.objects.filter(pk=stage.pk).update(
        approval_count=count,
        status=ApprovalStage.Status.APPROVED if done else ApprovalStage.Status.ACTIVE,
        completed_at=now if done else None,
    )
    if done:
        _advance(approval, actor, now)


def expire_requests(*, now=None) -> int:
    """Mark undecided requests past their deadline, and approvals past their validity, expired.

    Set-based and batched: claims rows with SKIP LOCKED so concurrent sweeps never collide.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            batch = list(
                ApprovalRequest.objects.select_for_update(skip_locked=True)
                .filter(_expired_filter(now))
                .only("pk", "status", "release_id")[:EXPIRE_BATCH]
            )
            for approval in batch:
                _transition(approval, ApprovalRequest.Status.EXPIRED, None, now)
        total += len(batch)
        if len(batch) < EXPIRE_BATCH:
            return total


def _expired_filter(now) -> Q:
    return Q(status=ApprovalRequest.Status.PENDING, expires_at__lte=now) | Q(
        status=ApprovalRequest.Status.APPROVED, valid_until__lte=now
    )


def reresolve_open_stages() -> int:
    """Bring the approver lists of undecided stages in line with today's roles and people.

    Plans freeze who may approve when they are made; since then roles were granted or revoked,
    people deactivated or provisioned. Decisions always re-check authority live, so this only
    keeps what pages and the gate *show* true. Returns how many requests changed.
    """
    stages = (
        ApprovalStage.objects.filter(
            status__in=[ApprovalStage.Status.ACTIVE, ApprovalStage.Status.WAITING],
            request__status=ApprovalRequest.Status.PENDING,
        )
        .select_related(
            "request__release__change",
            "request__release__service",
            "request__release__environment",
        )
        .prefetch_related("eligible_approvers")
    )
    resolved: dict[tuple[int, str], set[int]] = {}
    changed: set[int] = set()
    for stage in stages.iterator(chunk_size=500):
        release = stage.request.release
        key = (release.service_id, release.environment_id, stage.approvers, stage.team_rule)
        if key not in resolved:
            people = stage_people(
                release, stage.approvers, stage.team_rule, release.service.owning_teams()
            )
            resolved[key] = set(people.values_list("pk", flat=True))
        wanted = resolved[key] - release.conflicted_user_ids()
        if wanted != {u.pk for u in stage.eligible_approvers.all()}:
            stage.eligible_approvers.set(wanted)
            changed.add(stage.request_id)
    for approval in ApprovalRequest.objects.filter(pk__in=changed):
        refresh_snapshot(approval)
    return len(changed)


def record_deployment(
    *, release: Release, actor: User, status: str, url: str = "", digest: str | None = None
) -> Deployment:
    """Record a deployment outcome with the gate's answer for the deployed digest at that moment.

    Never refused: the deployment happened, and refusing to record it would hide that. When the
    gate had not approved it (pending, blocked, expired, rejected, another digest), it is an
    unapproved deployment: flagged on the release, ledgered as its own kind, and the service's
    owners and the administrators are told.
    """
    deployed = digest or release.digest
    with transaction.atomic(), ledger.deferred():
        gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk), digest=deployed)
        deployment = Deployment.objects.create(
            release=release,
            status=status,
            reported_by=actor,
            url=url,
            digest=deployed,
            gate_status=gate.status,
            gate_reasons=gate.reasons,
            approved=gate.status == "approved",
        )
        _mark_release_deployed(release, deployment)
        ledger.append(
            kind="deployment.reported" if deployment.approved else "deployment.unapproved",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={
                "status": status,
                "url": url,
                "digest": deployed,
                "approved_digest": release.digest,
                "gate": gate.status,
                "reasons": gate.reasons,
            },
        )
        if not deployment.approved:
            _alert_unapproved(release, deployment)
    return deployment


def _mark_release_deployed(release: Release, deployment: Deployment) -> None:
    fields = {}
    if deployment.status == Deployment.Status.SUCCEEDED:
        fields["deployed_at"] = deployment.created_at
    if not deployment.approved:
        fields["unapproved_deployment_at"] = deployment.created_at
    if fields:
        Release.objects.filter(pk=release.pk).update(**fields)
        for name, value in fields.items():
            setattr(release, name, value)


def _alert_unapproved(release: Release, deployment: Deployment) -> None:
    """Tell the service's owners and the administrators at once, whatever the hour."""
    people = {u.pk: u for u in release.service.owners.filter(is_active=True)}
    people.update({u.pk: u for u in administrators()})
    notify(
        people=people.values(),
        subject=f"Unapproved deployment: {release}",
        body=f"{deployment.reported_by.username} reported a {deployment.status} deployment of "
        f"{release.service.name} {release.version} ({deployment.digest}) to "
        f"{release.environment.name} while the gate said '{deployment.gate_status}': "
        f"{' '.join(deployment.gate_reasons)} It is recorded as an unapproved deployment.",
        url=reverse("approvals:release_detail", args=[release.pk]),
        reason="unapproved deployment",
    )
