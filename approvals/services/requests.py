"""Requesting approval: the release, its frozen plan, and evidence added later."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.announcements import announce
from approvals.context import policy_context
from approvals.exceptions import InvalidRequest, InvalidTransition, NotEligible
from approvals.gate import refresh_snapshot
from approvals.models import ApprovalRequest, ApprovalStage, Evidence, Release
from approvals.services.transitions import advance, follow_change, transition
from changes.freezes.services import add_freeze_stage
from changes.models import Incident
from changes.records.services import find_or_open_change, require_authorised_change
from governance.authority.selectors import eligible_approvers, may_act
from governance.ledger import services as ledger
from governance.models import Environment, Service, User
from governance.people.selectors import person_named
from governance.policy import standard
from governance.policy.engine import Plan, evaluate
from governance.policy.evidence import merge_requirement, snapshot_item
from governance.policy.models import PolicyVersion
from governance.policy.services import active_policy_version


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
    # The commit the run built (40 or 64 hex digits): how GitHub and GitLab hooks find it.
    pipeline_sha: str = ""
    triggered_by: str = ""
    evidence: tuple[dict, ...] = ()
    planned_at: datetime | None = None
    change_incident: Incident | None = None
    # The id of the policy's standard change template the change follows, if any.
    standard_change: str = ""


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
        service=data.service,
        incident=data.change_incident,
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
        pipeline_sha=data.pipeline_sha,
        idempotency_key=idempotency_key or None,
        planned_at=data.planned_at,
        standard_change=data.standard_change,
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
    plan = resolve_plan(release, version, now)
    if plan.itsm_change:
        require_authorised_change(release.change.ref)  # refused: the whole request rolls back
    approval = ApprovalRequest.objects.create(
        release=release,
        policy_version=version,
        plan=plan.to_dict(),
        # SOX's "all distinct" holds at decision time too: one person counts in one stage.
        dual_control=plan.dual_control or "distinct_people" in plan.checks,
        retro_review=plan.retro_review,
        requested_at=now,
        expires_at=now + timedelta(hours=settings.SIGNOFF_PENDING_TIMEOUT_HOURS),
    )
    _create_stages(approval, release, plan.stages, first_position=1)
    ledger.append(
        kind="approval.requested",
        subject=f"release:{release.pk}",
        actor=actor.username,
        payload=_request_payload(release, approval, version),
    )
    announce(
        release,
        "requested",
        f"Approval requested: {release} ({release.change.ref}) by {actor.username}.",
        requested_by=actor.username,
        stages=[stage.name for stage in plan.stages],
    )
    if plan.standard_change:
        # Approved by the template, not by a person: the ledger names the template and the
        # policy version that pre-approved it, and the approval's actor is the system.
        ledger.append(
            kind="approval.standard_change",
            subject=f"release:{release.pk}",
            actor="system",
            payload={"service": release.service.slug, **plan.standard_change},
        )
        actor = None
    advance(approval, actor, now)
    follow_change(release, actor)
    refresh_snapshot(approval)
    return approval


def resolve_plan(release: Release, version: PolicyVersion | None, now: datetime) -> Plan:
    """The plan the policy gives `release` now: its rules, a standard change template when the
    release names one whose conditions hold, and a soft freeze's extra stage."""
    evidence = list(release.evidence.all())
    if version is None:
        plan = Plan(errors=["No active policy; an administrator must publish one."])
    else:
        context = policy_context(release, evidence)
        plan = evaluate(version.source, context)
        if release.standard_change:
            _apply_standard_change(plan, release, version, context, evidence, now)
    # A soft freeze in force adds a release manager's approval to whatever the policy asks.
    return add_freeze_stage(plan, release.service, release.environment, release.change.type, now)


def _apply_standard_change(
    plan: Plan, release: Release, version: PolicyVersion, context: dict, evidence: list, now
) -> None:
    """A template whose conditions hold replaces the approval stages (its evidence is still
    required at deploy time, with everything else the gate checks); otherwise the normal path
    stands and the plan says why."""
    latest = {item.kind: snapshot_item(item.status, item.summary) for item in evidence}
    outcome = standard.assess(version.source, release.standard_change, context, latest, now)
    if not outcome.applies:
        plan.notes.append(
            f"Standard change '{release.standard_change}' does not apply, so the normal "
            f"approval path does: {'; '.join(outcome.failures)}."
        )
        return
    template = outcome.template
    plan.stages = []
    plan.dual_control = False
    plan.standard_change = {
        **template.as_dict(),
        "policy": f"{version.policy.slug}@v{version.number}",
    }
    requirements = {requirement.kind: requirement for requirement in plan.evidence}
    for raw in template.evidence:
        merge_requirement(requirements, raw, f"standard:{template.id}")
    plan.evidence = sorted(requirements.values(), key=lambda e: e.kind)
    plan.matched_rules.append(
        {
            "id": f"standard:{template.id}",
            "description": f"Standard change: {template.name} (owner {template.owner})",
            "when": template.when,
            "values": {},
        }
    )


def replan(release: Release, actor: User, *, reason: str) -> ApprovalRequest:
    """Plan an open request again after its context changed (a Terraform plan arrived), with
    the policy version it was planned with: strictest wins against the frozen plan, so new
    stages are added, counts raised (a completed stage reopens), requirements and blockers
    added; nothing is ever loosened. An approved request that gains a stage is pending again.
    Runs inside the caller's transaction."""
    now = timezone.now()
    approval = (
        # Locks the request's own row: its policy version may be NULL (an outer join).
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("policy_version__policy")
        .get(release=release)
    )
    open_statuses = (ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED)
    if approval.status not in open_statuses:
        raise InvalidTransition(
            f"This request is {approval.get_status_display().lower()}; request a new release."
        )
    current = Plan.from_dict(approval.plan)
    fresh = resolve_plan(release, approval.policy_version, now)
    merged, added, raised = tighten(current, fresh)
    existing = {stage.key: stage for stage in approval.stages.all()}
    for requirement in raised:
        stage = existing[requirement.key]
        fields = {"required_count": max(stage.required_count, requirement.count)}
        if (
            stage.status == ApprovalStage.Status.APPROVED
            and stage.approval_count < fields["required_count"]
        ):
            fields.update(status=ApprovalStage.Status.WAITING, completed_at=None)
        ApprovalStage.objects.filter(pk=stage.pk).update(**fields)
    _create_stages(approval, release, added, first_position=len(existing) + 1)
    reopened = (
        added
        or ApprovalStage.objects.filter(
            request=approval, status=ApprovalStage.Status.WAITING
        ).exists()
    )
    dual_control = merged.dual_control or "distinct_people" in merged.checks
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        plan=merged.to_dict(), dual_control=dual_control
    )
    approval.plan, approval.dual_control = merged.to_dict(), dual_control
    ledger.append(
        kind="approval.replanned",
        subject=f"release:{release.pk}",
        actor=actor.username,
        payload={
            "reason": reason,
            "stages_added": [s.key for s in added],
            "counts_raised": {s.key: s.count for s in raised},
            "blocks": merged.blocks,
            "plan": approval.plan,
        },
    )
    if approval.status == ApprovalRequest.Status.APPROVED and (reopened or merged.blocks):
        _reopen(approval, actor, now)
    if approval.status == ApprovalRequest.Status.PENDING:
        advance(approval, actor, now)
    refresh_snapshot(approval)
    return approval


def tighten(current: Plan, fresh: Plan) -> tuple[Plan, list, list]:
    """`current` made at least as strict as `fresh`: (the merged plan, stage requirements to
    add, stage requirements whose count rose)."""
    merged = Plan.from_dict(current.to_dict())
    stages = {stage.key: stage for stage in merged.stages}
    added, raised = [], []
    for stage in fresh.stages:
        mine = stages.get(stage.key)
        if mine is None:
            merged.stages.append(stage)
            added.append(stage)
        elif stage.count > mine.count:
            mine.count = stage.count
            mine.rules = sorted({*mine.rules, *stage.rules})
            raised.append(mine)
    evidence = {requirement.kind: requirement for requirement in merged.evidence}
    for requirement in fresh.evidence:
        raw = {k: v for k, v in asdict(requirement).items() if k != "rules" and v is not None}
        for rule_id in requirement.rules:
            merge_requirement(evidence, raw, rule_id)
    merged.evidence = sorted(evidence.values(), key=lambda e: e.kind)
    for name in ("errors", "blocks", "notes"):
        setattr(merged, name, _union(getattr(merged, name), getattr(fresh, name)))
    for check, rules in fresh.checks.items():
        merged.checks[check] = _union(merged.checks.get(check, []), rules)
    for checkpoint, items in fresh.checkpoints.items():
        merged.checkpoints[checkpoint] = _union(merged.checkpoints.get(checkpoint, []), items)
    known = {rule["id"] for rule in merged.matched_rules}
    merged.matched_rules += [rule for rule in fresh.matched_rules if rule["id"] not in known]
    merged.slas = _union(merged.slas, fresh.slas)
    for flag in ("dual_control", "retro_review", "itsm_change"):
        setattr(merged, flag, getattr(merged, flag) or getattr(fresh, flag))
    hours = [h for h in (merged.approval_valid_hours, fresh.approval_valid_hours) if h]
    merged.approval_valid_hours = min(hours) if hours else None
    if added or raised:
        merged.standard_change = None  # people decide now: no template approves it any more
    return merged, added, raised


def _union(first: list, second: list) -> list:
    return first + [item for item in second if item not in first]


def _reopen(approval: ApprovalRequest, actor: User, now: datetime) -> None:
    """An approved request that needs more now waits for decisions again (and may expire)."""
    expires_at = now + timedelta(hours=settings.SIGNOFF_PENDING_TIMEOUT_HOURS)
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        status=ApprovalRequest.Status.PENDING,
        decided_at=None,
        valid_until=None,
        expires_at=expires_at,
    )
    approval.status, approval.expires_at = ApprovalRequest.Status.PENDING, expires_at
    approval.decided_at = approval.valid_until = None
    ledger.append(
        kind="gate.transition",
        subject=f"release:{approval.release_id}",
        actor=actor.username,
        payload={"from": ApprovalRequest.Status.APPROVED, "to": ApprovalRequest.Status.PENDING},
    )
    follow_change(approval.release, actor)


def _create_stages(
    approval: ApprovalRequest, release: Release, stages: list, *, first_position: int
) -> None:
    conflicted = release.conflicted_user_ids()
    teams = release.service.owning_teams()
    for position, requirement in enumerate(stages, start=first_position):
        team_rule = requirement.teams if requirement.approvers != "cab" else ""
        each = [t.slug for t in teams] if team_rule == "each" else []
        stage = ApprovalStage.objects.create(
            request=approval,
            position=position,
            order=requirement.order,
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


def _request_payload(release: Release, approval: ApprovalRequest, version) -> dict:
    return {
        "service": release.service.slug,
        "environment": release.environment.slug,
        "platform": release.environment.platform,
        "version": release.version,
        "image": release.image,
        "digest": release.digest,
        "change": release.change.ref,
        "requested_by": release.requested_by.username,
        "triggered_by": release.triggered_by_name,
        "triggered_by_resolved": release.triggered_by.username if release.triggered_by else None,
        "previous": release.previous_id,
        "policy": f"{version.policy.slug}@v{version.number}" if version else None,
        "plan": approval.plan,
    }


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


def withdraw_request(*, release: Release, actor: User, reason: str) -> ApprovalRequest:
    """Withdraw a pending request with a reason: its open stages are cancelled, nobody can
    decide it any more, and the gate answers 'rejected' naming who withdrew it and why.

    The requester, the person who triggered the pipeline, or anyone who may request releases of
    the service to that environment (a release manager, the pipeline) may withdraw it.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(
            "A reason is required to withdraw a request.", fields={"reason": ["Required."]}
        )
    if not may_withdraw(release, actor):
        raise NotEligible(
            "Only the requester, whoever triggered the pipeline or a release manager of "
            f"{release.service.name} can withdraw this request."
        )
    now = timezone.now()
    with transaction.atomic(), ledger.deferred():
        approval = ApprovalRequest.objects.select_for_update().get(release=release)
        if approval.status != ApprovalRequest.Status.PENDING:
            raise InvalidTransition(
                f"This request is {approval.get_status_display().lower()}; only a pending "
                "request can be withdrawn."
            )
        approval.stages.filter(
            status__in=[ApprovalStage.Status.WAITING, ApprovalStage.Status.ACTIVE]
        ).update(status=ApprovalStage.Status.CANCELLED, completed_at=now)
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            withdrawn_by=actor, withdrawal_reason=reason
        )
        approval.withdrawn_by, approval.withdrawal_reason = actor, reason
        transition(approval, ApprovalRequest.Status.WITHDRAWN, actor, now)
        ledger.append(
            kind="approval.withdrawn",
            subject=f"release:{release.pk}",
            actor=actor.username,
            payload={"reason": reason},
        )
        refresh_snapshot(approval)
    return approval


def may_withdraw(release: Release, user: User) -> bool:
    """Whether `user` may withdraw `release`'s request (see `withdraw_request`)."""
    if not user.is_active:
        return False
    if user.pk in (release.requested_by_id, release.triggered_by_id):
        return True
    return may_act(user, "request", release.service, release.environment)


CLOSED = (
    ApprovalRequest.Status.REJECTED,
    ApprovalRequest.Status.WITHDRAWN,
    ApprovalRequest.Status.EXPIRED,
)


def request_again(*, release: Release, actor: User) -> Release:
    """Ask again for a rejected, withdrawn or expired request: a new release of the same
    artifact and change, linked to the old one, planned from the policy in force today.

    The evidence reported for the artifact comes along (the newest of each kind, reporter and
    time kept). Only once per request, by those who may withdraw it.
    """
    if not may_withdraw(release, actor):
        raise NotEligible(
            "Only the requester, whoever triggered the pipeline or a release manager of "
            f"{release.service.name} can request this again."
        )
    with transaction.atomic(), ledger.deferred():
        # The lock makes two people pressing "request again" at once make one new request.
        approval = ApprovalRequest.objects.select_for_update().get(release=release)
        if approval.status not in CLOSED:
            raise InvalidTransition(
                f"This request is {approval.get_status_display().lower()}; only a rejected, "
                "withdrawn or expired request can be requested again."
            )
        again = release.next_requests.first()
        if again is not None:
            raise InvalidTransition(f"This request was already requested again (#{again.pk}).")
        new = _create_release(_same_release(release), actor, None)
        Release.objects.filter(pk=new.pk).update(previous=release)
        new.previous = release
        _carry_evidence(release, new)
        _create_plan(new, actor)
    return new


def _same_release(release: Release) -> ReleaseInput:
    return ReleaseInput(
        service=release.service,
        environment=release.environment,
        version=release.version,
        image=release.image,
        digest=release.digest,
        change_ref=release.change.ref,
        change_type=release.change.type,
        change_title=release.change.title,
        pipeline_provider=release.pipeline_provider,
        pipeline_run_url=release.pipeline_run_url,
        pipeline_sha=release.pipeline_sha,
        triggered_by=release.triggered_by_name,
        planned_at=release.planned_at,
    )


def _carry_evidence(old: Release, new: Release) -> None:
    newest = {item.kind: item for item in old.evidence.order_by("created_at", "pk")}
    Evidence.objects.bulk_create(
        Evidence(
            release=new,
            kind=item.kind,
            status=item.status,
            summary=item.summary,
            url=item.url,
            reported_by_id=item.reported_by_id,
            created_at=item.created_at,
        )
        for item in newest.values()
    )
