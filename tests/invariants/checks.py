"""Every invariant of DESIGN.md, checked against the database and the ledger after each step.

Each failure is an `InvariantBroken` whose message starts with the invariant's number and name
("Invariant 1 (nobody approves their own work): ..."), so a failing example says at once which
promise broke. What the database cannot tell (whom a pipeline's free-text name meant, who made a
catalogue change) comes from the model's own record of what it did, `Record`.

Invariants 1 to 12 and 17 (only members of the owning teams count under a team rule) are here;
13 to 16, about freezes, incidents and change records, are in `hold_checks`; 18, about what
measuring records (alerts, quarterly reviews, workflow ratings), in `measure_checks`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count

from approvals.gate import evaluate_gate, rebuild_snapshots
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Deployment, Evidence, Release
from governance.ledger import format as ledger_format
from governance.ledger import services as ledger
from governance.models import (
    ApiToken,
    Delegation,
    LedgerEntry,
    LedgerHead,
    PolicyVersion,
    RoleAssignment,
)
from tests.invariants.oracle import World, conflicted, expected_gate, seat, standing

NAMES = {
    1: "nobody approves their own work",
    2: "N distinct people",
    3: "delegation keeps separation of duties",
    4: "nobody empowers themselves",
    5: "the ledger verifies",
    6: "digest binding",
    7: "nothing half-written",
    8: "no lost or double decision",
    9: "auditors are independent, nobody decides through their own act",
    10: "unapproved deployments are never hidden",
    11: "the ledger covers every change",
    12: "the gate's answer is a from-scratch evaluation",
    13: "a hard freeze holds everything but emergencies and confirmed overrides",
    14: "a blocking incident holds high-risk releases",
    15: "a soft freeze adds a release manager",
    16: "the change record follows its releases",
    17: "only the owning teams count",
    18: "nobody closes out their own act (alerts, quarterly reviews, workflow ratings)",
    19: "a cluster runs only what was approved for its environment",
    20: "a CAB meeting decides as its recording member; nobody reviews their own emergency",
    21: "policies from files keep four eyes; auditors take evidence away and change nothing",
    22: "a pipeline's deployment gate opens only on the gate's approval of that digest",
}


class InvariantBroken(AssertionError):
    """A promise of DESIGN.md does not hold in the state the model reached."""


# One subclass per invariant: hypothesis tells failures apart by exception type, so each broken
# invariant is shrunk on its own instead of into whichever other one is shortest to reach.
BROKEN = {
    number: type(f"Invariant{number}Broken", (InvariantBroken,), {"__module__": __name__})
    for number in NAMES
}


def require(condition: bool, number: int, detail: str) -> None:
    if not condition:
        raise BROKEN[number](f"Invariant {number} ({NAMES[number]}): {detail}")


@dataclass
class Record:
    """What the model did, where the database does not say it, and how far it has checked."""

    meant_trigger: dict[int, str | None] = field(default_factory=dict)  # release → username
    made_owner_by: dict[tuple[int, int], int | None] = field(default_factory=dict)
    made_member_by: dict[tuple[int, int], int | None] = field(default_factory=dict)
    stage_status: dict[int, str] = field(default_factory=dict)  # before the step
    seen_decision: int = 0
    seen_grant: int = 0
    seen_deployment: int = 0
    seen_request: int = 0
    seen_overrides: set[tuple[int, int | None]] = field(default_factory=set)
    seen_change_deployment: int = 0
    moved_by_hand: set[int] = field(default_factory=set)  # changes a person moved
    ledger_seq: int = 0
    ledger_hash: str = ledger_format.GENESIS_HASH
    seen_acknowledged: set[int] = field(default_factory=set)  # alerts
    seen_outcomes: set[int] = field(default_factory=set)  # quarterly review items
    seen_ratings: set[tuple] = field(default_factory=set)  # (feedback, updated_at)
    rating_changes: dict[int, int] = field(default_factory=dict)  # release → ratings given
    admission: object = None  # cluster_checks.Reviews, set by ClusterSteps.setup_cluster
    cab: object = None  # cab_checks.CabSeen: what invariant 20 has judged
    pipelines: object = None  # pipeline_checks.PipelineRecord, set by PipelineSteps
    evidence: object = None  # evidence_checks.EvidenceRecord, set by EvidenceSteps


@dataclass
class Requests:
    """The approval requests of the example with their stages, decisions and evidence."""

    releases: dict[int, Release]
    stages: dict[int, list[ApprovalStage]]  # request → stages by position
    decisions: dict[int, list[Decision]]  # stage → every decision, revoked ones too
    evidence: dict[int, list[Evidence]]  # release → evidence

    @classmethod
    def read(cls) -> Requests:
        releases = {
            r.pk: r for r in Release.objects.select_related("change", "approval", "service")
        }
        stages: dict[int, list[ApprovalStage]] = defaultdict(list)
        for stage in (
            ApprovalStage.objects.select_related("request")
            .prefetch_related("eligible_approvers")
            .order_by("request", "position")
        ):
            stages[stage.request_id].append(stage)
        decisions: dict[int, list[Decision]] = defaultdict(list)
        for decision in Decision.all_objects.order_by("pk"):
            decisions[decision.stage_id].append(decision)
        evidence: dict[int, list[Evidence]] = defaultdict(list)
        for item in Evidence.objects.all():
            evidence[item.release_id].append(item)
        return cls(releases, stages, decisions, evidence)


def check_all(world: World, record: Record, requests: Requests) -> dict[int, str]:
    """Every invariant, in the order a reader would look for the cause; returns the gate's
    answers (for `hold_checks`)."""
    check_new_decisions(world, record, requests)
    check_counting(world, record, requests)
    check_request_states(requests)
    check_snapshots()
    answers = check_gate(world, requests)
    check_new_deployments(record, requests)
    check_authority_sources(world, record)
    check_tokens(world)
    check_ledger(record)
    check_ledger_coverage(requests)
    record.stage_status = {s.pk: s.status for ss in requests.stages.values() for s in ss}
    return answers


# --- Decisions ---------------------------------------------------------------------------------


def check_new_decisions(world: World, record: Record, requests: Requests) -> None:
    """Each decision made in this step came from someone allowed to make it, at that moment."""
    stages = {s.pk: s for ss in requests.stages.values() for s in ss}
    fresh = [d for ds in requests.decisions.values() for d in ds if d.pk > record.seen_decision]
    for decision in sorted(fresh, key=lambda d: d.pk):
        stage = stages[decision.stage_id]
        release = requests.releases[stage.request.release_id]
        check_decision(world, record, release, stage, decision)
        record.seen_decision = max(record.seen_decision, decision.pk)


def check_decision(
    world: World, record: Record, release: Release, stage: ApprovalStage, decision: Decision
) -> None:
    at, who = decision.created_at, world.users[decision.approver_id].username
    principal = decision.on_behalf_of_id
    meant = record.meant_trigger.get(release.pk)
    # Whom the pipeline's name meant, provisioned then or since.
    meant_pk = next((pk for pk, u in world.users.items() if u.username == meant), None)
    forbidden = conflicted(release, release.change, meant_pk)
    what = f"{who}'s {decision.verdict} of release #{release.pk} ({stage.name})"
    require(
        decision.approver_id not in forbidden,
        1,
        f"{what}: {who} requested it, triggered its pipeline or wrote its change record",
    )
    require(
        principal not in forbidden,
        3,
        f"{what} was made for {world.users[principal].username if principal else ''}, "
        "who requested, triggered or wrote the change of this release",
    )
    for person in filter(None, (decision.approver_id, principal)):
        user = world.users[person]
        require(not user.is_service_account, 9, f"{what}: {user.username} is a service account")
        require(
            not world.is_auditor(person, at), 9, f"{what}: {user.username} holds the auditor role"
        )
    require(world.users[decision.approver_id].is_active, 8, f"{what}: {who} is deactivated")
    holder = seat(decision)
    # An overdue stage escalated to the CAB is the CAB's to decide too, from that moment on.
    via_cab = (
        stage.escalated_at is not None
        and stage.escalated_at <= at
        and world.holds(holder, "cab", release, at)
    )
    require(
        world.holds(holder, stage.approvers, release, at) or via_cab,
        2,
        f"{what}: {world.users[holder].username} holds no {stage.approvers} authority on "
        f"{release.service.slug} for this environment at {at:%Y-%m-%d %H:%M} (nor the CAB's "
        "on a stage escalated before then)",
    )
    if principal is not None:
        require(principal != decision.approver_id, 3, f"{what}: a delegate acting for themselves")
        require(
            world.delegation(decision.approver_id, principal, release.service_id, at) is not None,
            3,
            f"{what} for {world.users[principal].username} without a delegation in force that "
            "someone else set up",
        )
    for person in filter(None, (decision.approver_id, principal)):
        require(
            via_cab or world.in_teams(person, stage, release.service_id),
            17,
            f"{what}: {world.users[person].username} is in none of the owning teams the stage "
            f"needs ({stage.team_rule})",
        )
    require(decision.digest == release.digest, 6, f"{what} binds {decision.digest}")
    require(at < release.approval.expires_at, 8, f"{what} was made after the request expired")
    require(
        record.stage_status.get(stage.pk) == ApprovalStage.Status.ACTIVE,
        8,
        f"{what} was made on a stage that was {record.stage_status.get(stage.pk)}",
    )


def check_counting(world: World, record: Record, requests: Requests) -> None:
    """Stage counts are distinct people; nobody fills two seats; dual control holds."""
    for request_id, stages in requests.stages.items():
        approval = stages[0].request if stages else None
        seats_in_request: Counter[int] = Counter()
        for stage in stages:
            counted = standing(requests.decisions[stage.pk])
            approvals = [d for d in counted if d.verdict == Decision.Verdict.APPROVE]
            people = [p for d in counted for p in (d.approver_id, d.on_behalf_of_id) if p]
            where = f"request #{request_id} stage {stage.key}"
            require(
                len(people) == len(set(people)),
                2,
                f"{where}: one person counted twice (as approver or principal): "
                f"{sorted(world.users[p].username for p, n in Counter(people).items() if n > 1)}",
            )
            require(
                stage.approval_count == len({d.approver_id for d in approvals}) == len(approvals),
                2,
                f"{where}: approval_count {stage.approval_count}, standing approvals "
                f"{len(approvals)} by {len({d.approver_id for d in approvals})} people",
            )
            if stage.status == ApprovalStage.Status.APPROVED:
                require(
                    len(approvals) >= stage.required_count,
                    2,
                    f"{where} is approved with {len(approvals)} of {stage.required_count}",
                )
                if record.stage_status.get(stage.pk) != stage.status:
                    check_teams_covered(world, stage, approvals, where)
            seats_in_request.update(set(people))
        if approval is not None and approval.dual_control:
            twice = [p for p, n in seats_in_request.items() if n > 1]
            require(
                not twice,
                2,
                f"request #{request_id} is under dual control but "
                f"{sorted(world.users[p].username for p in twice)} counted in two stages",
            )


def check_teams_covered(
    world: World, stage: ApprovalStage, approvals: list[Decision], where: str
) -> None:
    """A stage needing each owning team completes only with an approval from each of them."""
    slugs = {pk: slug for pk, slug in world.team_slugs.items()}
    for slug in stage.teams_required:
        team = next(pk for pk, s in slugs.items() if s == slug)
        require(
            any(seat(d) in world.members[team] for d in approvals),
            2,
            f"{where} completed without an approval from team {slug}",
        )


def check_request_states(requests: Requests) -> None:
    """Stage statuses agree with the request's: one open stage at a time, in order."""
    for request_id, stages in requests.stages.items():
        approval = stages[0].request
        statuses = [s.status for s in stages]
        where = f"request #{request_id} ({approval.status}, stages {statuses})"
        errors = bool(approval.plan.get("errors"))
        if approval.status == ApprovalRequest.Status.APPROVED:
            require(
                all(s == "approved" for s in statuses) and not errors,
                8,
                f"{where} is approved with a stage or the policy unsettled",
            )
        if approval.status == ApprovalRequest.Status.PENDING:
            active = statuses.count("active")
            settled = all(s == "approved" for s in statuses) and errors
            require(active == 1 or settled, 8, f"{where} has {active} open stages")
            if active:
                position = statuses.index("active")
                require(
                    all(s == "approved" for s in statuses[:position])
                    and all(s == "waiting" for s in statuses[position + 1 :]),
                    8,
                    f"{where}: stages out of order",
                )
        if approval.status in (ApprovalRequest.Status.REJECTED, ApprovalRequest.Status.WITHDRAWN):
            require(
                "active" not in statuses and "waiting" not in statuses,
                8,
                f"{where} still has open stages",
            )
        if approval.status == ApprovalRequest.Status.REJECTED:
            rejected = [s for s in stages if s.status == "rejected"]
            require(len(rejected) == 1, 8, f"{where}: rejected without one rejected stage")


# --- The gate and deployments ------------------------------------------------------------------


def check_snapshots() -> None:
    """The gate's snapshot of each request is what a rebuild from its rows gives."""
    stored = dict(ApprovalRequest.objects.values_list("pk", "gate_snapshot"))
    # Rebuilt in a savepoint that is rolled back: the check writes nothing.
    with transaction.atomic():
        rebuild_snapshots(ApprovalRequest.objects.all())
        fresh = dict(ApprovalRequest.objects.values_list("pk", "gate_snapshot"))
        transaction.set_rollback(True)
    for pk, snapshot in stored.items():
        require(
            snapshot == fresh[pk],
            12,
            f"approval request #{pk}: the stored snapshot drifted from the rows "
            f"(stored {snapshot}, rows say {fresh[pk]})",
        )


def check_gate(world: World, requests: Requests) -> dict[int, str]:
    """The gate answers what the rules, evaluated from the rows, say it must answer now (freezes
    and incidents included). The only check that time alone can change: it runs after every
    step, even one that wrote nothing. Returns the answers, by release."""
    answers = {}
    for release in Release.objects.for_gate():
        answer = evaluate_gate(release, now=world.now).status
        full = requests.releases[release.pk]
        held = world.held_back.held(full, full.change, world.now)
        expected = expected_gate(
            full, full.approval, full.change, requests.evidence[release.pk], world.now, held=held
        )
        require(
            answer == expected,
            12,
            f"release #{release.pk}: the gate says {answer}, the rules say {expected}",
        )
        answers[release.pk] = answer
    return answers


def check_new_deployments(record: Record, requests: Requests) -> None:
    """Every deployment the gate had not approved is flagged, ledgered and marks its release."""
    fresh = Deployment.objects.filter(pk__gt=record.seen_deployment).order_by("pk")
    for deployment in fresh:
        release = requests.releases[deployment.release_id]
        where = f"deployment #{deployment.pk} of release #{release.pk}"
        approved = deployment.gate_status == "approved" and deployment.digest == release.digest
        require(
            deployment.approved == approved,
            10,
            f"{where}: gate said {deployment.gate_status} for {deployment.digest}, "
            f"recorded approved={deployment.approved}",
        )
        if not deployment.approved:
            require(
                release.unapproved_deployment_at is not None,
                10,
                f"{where} is unapproved but its release is not flagged",
            )
        kind = "deployment.reported" if deployment.approved else "deployment.unapproved"
        require(
            LedgerEntry.objects.filter(
                kind=kind, subject=f"release:{release.pk}", payload__digest=deployment.digest
            ).exists(),
            10,
            f"{where} has no {kind} ledger entry",
        )
        record.seen_deployment = deployment.pk


# --- Authority and where it comes from ----------------------------------------------------------


def check_authority_sources(world: World, record: Record) -> None:
    """Every authority a person holds traces back to an act of someone else."""
    for grant in world.grants:
        name = world.users[grant.user_id].username
        require(
            grant.granted_by_id != grant.user_id,
            4,
            f"{name} holds {grant.role} ({grant.scope_label}) granted by themselves",
        )
        if grant.pk > record.seen_grant and grant.granted_by_id is not None:
            require(
                world.is_administrator(grant.granted_by_id, world.now),
                4,
                f"{name} was granted {grant.role} by "
                f"{world.users[grant.granted_by_id].username}, who is no administrator",
            )
        record.seen_grant = max(record.seen_grant, grant.pk)
    for delegation in world.delegations:
        require(
            delegation.created_by_id != delegation.delegate_id,
            9,
            f"{world.users[delegation.delegate_id].username} arranged the delegation that "
            f"lends them {world.users[delegation.delegator_id].username}'s authority",
        )
        require(
            delegation.delegate_id != delegation.delegator_id,
            3,
            f"{world.users[delegation.delegate_id].username} delegates to themselves",
        )
    for service_id, owners in world.owners.items():
        for owner in owners:
            by = record.made_owner_by.get((service_id, owner))
            require(
                by != owner,
                9,
                f"{world.users[owner].username} made themselves an owner of "
                f"{world.services[service_id].slug}",
            )
    for team_id, members in world.members.items():
        for member in members:
            by = record.made_member_by.get((team_id, member))
            require(
                by != member,
                9,
                f"{world.users[member].username} added themselves to team "
                f"{world.team_slugs[team_id]}",
            )


def check_tokens(world: World) -> None:
    """A deactivated person's tokens are dead for good (revoked, not merely refused)."""
    inactive = [pk for pk, user in world.users.items() if not user.is_active]
    alive = ApiToken.objects.filter(user__in=inactive, revoked_at__isnull=True)
    require(
        not alive.exists(),
        9,
        f"deactivated people keep live tokens: {[t.user.username for t in alive]}",
    )


# --- The ledger --------------------------------------------------------------------------------


def check_ledger(record: Record) -> None:
    """The chain verifies (checked from where the last step left off: entries never change,
    the database refuses it) and the head is its last entry."""
    entries = list(ledger.stored_entries(after=record.ledger_seq))
    for result in ledger_format.verify_entries(
        entries, ledger.public_keys(), after_seq=record.ledger_seq, after_hash=record.ledger_hash
    ):
        require(not isinstance(result, ledger_format.Problem), 5, f"{result}")
    if entries:
        record.ledger_seq, record.ledger_hash = entries[-1]["seq"], entries[-1]["entry_hash"]
    head = LedgerHead.objects.get(pk=1)
    require(
        (head.seq, head.entry_hash) == (record.ledger_seq, record.ledger_hash),
        5,
        f"the head (#{head.seq}) is not the last entry (#{record.ledger_seq})",
    )


def check_ledger_coverage(requests: Requests) -> None:
    """Every change the invariants talk about has its ledger entry."""
    kinds = Counter(
        dict(LedgerEntry.objects.values_list("kind").annotate(n=Count("id")).order_by())
    )
    takeovers = LedgerEntry.objects.filter(kind="role.granted", payload__has_key="note").count()
    rows = row_counts()
    for kind, count in rows.items():
        if kind != "role.held":
            require(kinds[kind] == count, 11, f"{count} {kind} rows, {kinds[kind]} ledger entries")
    grants = kinds["role.granted"] - takeovers - kinds["role.revoked"]
    held = rows["role.held"]
    require(grants == held, 11, f"{held} grants held, the ledger accounts for {grants}")
    check_transitions(requests)


# Rows that each must have one ledger entry of the kind named, counted in one query.
ROW_KINDS = {
    "decision.recorded": (Decision, "TRUE"),
    "decision.revoked": (Decision, "revoked_at IS NOT NULL"),
    "approval.requested": (ApprovalRequest, "TRUE"),
    "approval.withdrawn": (ApprovalRequest, "status = 'withdrawn'"),
    "delegation.created": (Delegation, "TRUE"),
    "delegation.revoked": (Delegation, "revoked_at IS NOT NULL"),
    "policy.published": (PolicyVersion, "TRUE"),
    "token.issued": (ApiToken, "TRUE"),
    "token.revoked": (ApiToken, "revoked_at IS NOT NULL"),
    "deployment.reported": (Deployment, "approved"),
    "deployment.unapproved": (Deployment, "NOT approved"),
    "role.held": (RoleAssignment, "TRUE"),
}


def row_counts() -> dict[str, int]:
    parts = [
        f"(SELECT count(*) FROM {model._meta.db_table} WHERE {where})"
        for model, where in ROW_KINDS.values()
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        return dict(zip(ROW_KINDS, cursor.fetchone(), strict=True))


def check_transitions(requests: Requests) -> None:
    """Each request's ledgered status changes chain from 'pending' to its status today."""
    chains: dict[str, list[dict]] = defaultdict(list)
    for subject, payload in LedgerEntry.objects.filter(kind="gate.transition").values_list(
        "subject", "payload"
    ):
        chains[subject].append(payload)
    for release in requests.releases.values():
        status = "pending"
        for step in chains[f"release:{release.pk}"]:
            require(
                step["from"] == status,
                11,
                f"release #{release.pk}: the ledger moves it from {step['from']} while it was "
                f"{status}",
            )
            status = step["to"]
        require(
            status == release.approval.status,
            11,
            f"release #{release.pk} is {release.approval.status}; the ledger says {status}",
        )
