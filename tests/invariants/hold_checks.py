"""The invariants about what holds a release back and about its change record, checked after
each step with the gate's answers `checks.check_gate` collected.

13. A hard freeze in force over a release's service and environment never lets a release's gate
    answer `approved`, unless its change is an emergency whose exception is in force, or an
    override of that freeze for that release is confirmed and unexpired, confirmed by an
    administrator other than the one who asked for it. An emergency change's release is never
    `approved` outside its exception.
14. An open blocking incident (P1, or high urgency) on a release's service or on a service it
    depends on holds a release to a high-risk environment, unless the release's change is an
    emergency whose exception is in force.
15. A soft freeze in force when a release is requested adds one stage decided by a release
    manager of the service (never the requester, the pipeline's trigger or the change's
    author); no freeze, no such stage.
16. A change record opened by Signoff and never moved by a person is never behind its live
    releases (all approved: scheduled at least; one deployed: implement at least), and is in
    implement or review only once one of them was deployed; no deployment is recorded as
    approved while its change is closed or cancelled.

(Invariant 17, only members of the owning teams count under a team rule, is judged with each
decision in `checks.check_decision`.) What a freeze or an incident holds is read by
`oracle.Holds`, from the rows, without the product's selectors.
"""

from __future__ import annotations

from approvals.models import ApprovalRequest, Deployment, Release
from changes.models import ChangeRecord
from governance.models import User
from tests.invariants.checks import Record, Requests, require
from tests.invariants.drawing import tally
from tests.invariants.oracle import World, conflicted

State = ChangeRecord.State
# Where linked releases put a change, along the life cycle (cancelled and closed end it).
ORDER = (
    State.NEW,
    State.ASSESS,
    State.AUTHORISE,
    State.SCHEDULED,
    State.IMPLEMENT,
    State.REVIEW,
    State.CLOSED,
)


def check_holds(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariants 13 and 14 after every step (time alone starts freezes and ends overrides);
    15 and 16 after a step that wrote something."""
    for release_id, answer in answers.items():
        release = requests.releases[release_id]
        if answer == "approved":
            check_freezes_hold(world, release)
            check_incidents_hold(world, release)
    if wrote:
        check_new_overrides(world, record)
        check_new_requests(world, record, requests)
        check_changes_follow(record, requests)


# --- 13: hard freezes ---------------------------------------------------------------------------


def check_freezes_hold(world: World, release: Release) -> None:
    change = release.change
    holds, now = world.held_back, world.now
    hard = holds.freezes_at("hard", release.service_id, release.environment_id, now)
    if change.type == ChangeRecord.Type.EMERGENCY:
        require(
            holds.excepted(change, now),
            13,
            f"release #{release.pk} of emergency change {change.ref} is approved at the gate "
            "outside its emergency exception",
        )
        if hard:
            tally["gate approved an emergency inside its exception and a hard freeze"] += 1
        return
    for freeze in hard:
        override = holds.override(freeze, release.pk, now)
        require(
            override is not None,
            13,
            f"release #{release.pk} ({change.type} change {change.ref}) is approved at the gate "
            f"inside hard freeze '{freeze.name}' with no confirmed override in force",
        )
        require(
            override.confirmed_by_id not in (None, override.requested_by_id),
            13,
            f"release #{release.pk} passes hard freeze '{freeze.name}' on an override confirmed "
            "by the administrator who asked for it",
        )
        tally["gate approved through a hard freeze on an override"] += 1


def check_new_overrides(world: World, record: Record) -> None:
    """Each override is asked for by an administrator and confirmed by another one."""
    for override in world.held_back.overrides:
        seen = (override.pk, override.confirmed_by_id)
        if seen in record.seen_overrides:
            continue
        record.seen_overrides.add(seen)
        asked, confirmed = override.requested_by_id, override.confirmed_by_id
        where = f"override #{override.pk} of release #{override.release_id}"
        require(
            world.is_administrator(asked, override.requested_at),
            13,
            f"{where} was asked for by {name(world, asked)}, who is no administrator",
        )
        if confirmed is None:
            continue  # when it is confirmed, it is seen again
        require(
            confirmed != asked,
            13,
            f"{where} was asked for and confirmed by {name(world, asked)} alone",
        )
        require(
            world.is_administrator(confirmed, override.confirmed_at),
            13,
            f"{where} was confirmed by {name(world, confirmed)}, who is no administrator",
        )
        require(
            override.confirmed_at < override.expires_at,
            13,
            f"{where} was confirmed after it expired",
        )


# --- 14: incidents ------------------------------------------------------------------------------


def check_incidents_hold(world: World, release: Release) -> None:
    holds, change = world.held_back, release.change
    if holds.risk[release.environment_id] != "high":
        return
    for incident in holds.blocking(release.service_id):
        require(
            holds.excepted(change, world.now),
            14,
            f"release #{release.pk} of {world.services[release.service_id].slug} is approved "
            f"at the gate while incident {incident.external_id} ({incident.priority or '-'}, "
            f"{incident.urgency or '-'} urgency, {incident.status}) holds it, and its change "
            f"{change.ref} ({change.type}) holds no emergency exception in force",
        )
        tally["gate approved an emergency inside its exception despite a blocking incident"] += 1


# --- 15: soft freezes ---------------------------------------------------------------------------


def check_new_requests(world: World, record: Record, requests: Requests) -> None:
    """A request made in this step has the release manager's stage exactly when a soft freeze
    covered it then; that stage lists release managers of the service, never a conflicted one."""
    for release in requests.releases.values():
        approval: ApprovalRequest = release.approval
        if approval.pk <= record.seen_request:
            continue
        stages = requests.stages.get(approval.pk, [])  # none when the plan asks for nothing
        at = approval.requested_at
        soft = world.held_back.freezes_at("soft", release.service_id, release.environment_id, at)
        emergency = release.change.type == ChangeRecord.Type.EMERGENCY
        wanted = bool(soft) and not approval.plan.get("errors") and not emergency
        added = [s for s in stages if s.key == "freeze"]
        where = f"release #{release.pk} requested at {at:%Y-%m-%d %H:%M}"
        require(
            len(added) == (1 if wanted else 0),
            15,
            f"{where}: soft freezes in force {[f.name for f in soft]}, "
            f"{len(added)} release manager stage(s)",
        )
        if added:
            tally["soft freeze added a release manager stage"] += 1
        for stage in added:
            check_freeze_stage(world, record, release, stage, where)
    record.seen_request = max(
        [record.seen_request, *(r.approval.pk for r in requests.releases.values())]
    )


def check_freeze_stage(world: World, record: Record, release, stage, where: str) -> None:
    meant = record.meant_trigger.get(release.pk)
    meant_pk = next((pk for pk, u in world.users.items() if u.username == meant), None)
    forbidden = conflicted(release, release.change, meant_pk)
    require(
        stage.approvers == "release_managers" and stage.required_count == 1,
        15,
        f"{where}: the freeze stage is {stage.required_count} of {stage.approvers}",
    )
    for person in stage.eligible_approvers.all():
        require(
            person.pk not in forbidden,
            15,
            f"{where}: {person.username}, who requested, triggered or wrote it, may decide "
            "the freeze stage",
        )
        require(
            world.holds(person.pk, "release_managers", release, stage.request.requested_at),
            15,
            f"{where}: {person.username} may decide the freeze stage without being a release "
            f"manager of {world.services[release.service_id].slug}",
        )


# --- 16: change records -------------------------------------------------------------------------


def check_changes_follow(record: Record, requests: Requests) -> None:
    """Each Signoff change keeps up with its releases; nothing ended is deployed as approved."""
    by_change: dict[int, list[Release]] = {}
    for release in requests.releases.values():
        by_change.setdefault(release.change_id, []).append(release)
    for releases in by_change.values():
        change = releases[0].change
        if change.source == ChangeRecord.Source.SIGNOFF and change.pk not in record.moved_by_hand:
            check_change_state(change, releases)
    # A step that deploys moves no change by hand: a change ended now was ended at the gate.
    ended = Deployment.objects.filter(
        pk__gt=record.seen_change_deployment,
        approved=True,
        release__change__state__in=ChangeRecord.ENDED_STATES,
    ).select_related("release__change")
    for deployment in ended:
        change = deployment.release.change
        require(
            False,
            16,
            f"deployment #{deployment.pk} of release #{deployment.release_id} was recorded as "
            f"approved while its change {change.ref} was {change.state}",
        )
    last = Deployment.objects.order_by("-pk").values_list("pk", flat=True).first()
    record.seen_change_deployment = last or 0


def check_change_state(change: ChangeRecord, releases: list[Release]) -> None:
    live = [r for r in releases if r.approval.status in ("pending", "approved")]
    deployed = [r for r in live if r.deployed_at is not None]
    where = f"change {change.ref} is {change.state} with releases " + ", ".join(
        f"#{r.pk} {r.approval.status}{' deployed' if r.deployed_at else ''}" for r in releases
    )
    if change.state in ChangeRecord.ENDED_STATES:
        require(False, 16, f"{where}: ended though nobody moved it")
    require(
        change.state not in (State.IMPLEMENT, State.REVIEW)
        or any(r.deployed_at is not None for r in releases),
        16,
        f"{where}: implementing or in review with nothing deployed",
    )
    if not live:
        return
    if deployed:
        floor = State.REVIEW if len(deployed) == len(live) else State.IMPLEMENT
    elif all(r.approval.status == "approved" for r in live):
        floor = State.SCHEDULED
    else:
        floor = State.AUTHORISE
    rank = ORDER.index(change.state)
    require(
        rank >= ORDER.index(floor) and not (floor == State.AUTHORISE and rank == 3),
        16,
        f"{where}: its releases put it at {floor} at least"
        + (" (a pending release takes a scheduled change back)" if rank == 3 else ""),
    )


def name(world: World, person: int | None) -> str:
    user: User | None = world.users.get(person) if person else None
    return user.username if user else "nobody"
