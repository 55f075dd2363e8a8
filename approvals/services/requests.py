"""Requesting approval: the release, its frozen plan, and evidence added later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

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
from governance.policy.engine import Plan, evaluate
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
    triggered_by: str = ""
    evidence: tuple[dict, ...] = ()
    planned_at: datetime | None = None
    change_incident: Incident | None = None


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
    # A soft freeze in force adds a release manager's approval to whatever the policy asks.
    plan = add_freeze_stage(plan, release.service, release.environment, release.change.type, now)
    if plan.itsm_change:
        require_authorised_change(release.change.ref)  # refused: the whole request rolls back
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
    advance(approval, actor, now)
    follow_change(release, actor)
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
