"""The rules, re-read from scratch: who holds which authority at a moment, and what the gate
must answer, computed in plain Python from the stored rows.

Nothing here calls the product's selectors, authority or gate code: the model compares what the
product did with what these independent readings say, so a rule broken in the product cannot
also break the yardstick it is measured with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Evidence, Release
from changes.models import ChangeRecord
from governance.models import Delegation, Role, RoleAssignment, Service, Team, User

# A policy's approver source → the role whose grant carries it ("service_owners" is ownership).
SOURCE_ROLE = {"service_approvers": Role.APPROVER, "cab": Role.CAB_MEMBER}
DECIDING_ROLES = (Role.APPROVER, Role.CAB_MEMBER)


@dataclass
class World:
    """One read of who is who and who holds what, taken after a step of the model."""

    now: datetime
    users: dict[int, User] = field(default_factory=dict)
    grants: list[RoleAssignment] = field(default_factory=list)
    services: dict[int, Service] = field(default_factory=dict)
    owners: dict[int, set[int]] = field(default_factory=dict)
    co_owners: dict[int, list[int]] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)
    team_slugs: dict[int, str] = field(default_factory=dict)
    delegations: list[Delegation] = field(default_factory=list)

    @classmethod
    def read(cls, now: datetime) -> World:
        world = cls(now=now)
        world.users = {u.pk: u for u in User.objects.all()}
        world.grants = list(RoleAssignment.objects.all())
        for service in Service.objects.prefetch_related("owners", "co_owning_teams"):
            world.services[service.pk] = service
            world.owners[service.pk] = {u.pk for u in service.owners.all()}
            world.co_owners[service.pk] = [t.pk for t in service.co_owning_teams.all()]
        for team in Team.objects.prefetch_related("members"):
            world.members[team.pk] = {u.pk for u in team.members.all()}
            world.team_slugs[team.pk] = team.slug
        world.delegations = list(Delegation.objects.all())
        return world

    # --- Roles --------------------------------------------------------------------------------

    def grants_of(self, person: int, role: str, at: datetime) -> list[RoleAssignment]:
        """`person`'s grants of `role` in force at `at` (a grant ends when its expiry comes)."""
        return [
            g
            for g in self.grants
            if g.user_id == person
            and g.role == role
            and (g.expires_at is None or g.expires_at > at)
        ]

    def is_auditor(self, person: int, at: datetime) -> bool:
        return bool(self.grants_of(person, Role.AUDITOR, at))

    def is_administrator(self, person: int, at: datetime) -> bool:
        user = self.users[person]
        everywhere = [
            g for g in self.grants_of(person, Role.ADMINISTRATOR, at) if g.service_id is None
        ]
        return user.is_active and (user.is_superuser or bool(everywhere))

    def covers(self, grant: RoleAssignment, service: Service, environment_id: int) -> bool:
        """Whether a grant's scope takes in releases of `service` to that environment."""
        if grant.service_id is not None:
            scoped = grant.service_id == service.pk
        elif grant.team_id is not None:
            scoped = grant.team_id == self.services[service.pk].team_id
        else:
            scoped = True
        return scoped and grant.environment_id in (None, environment_id)

    # --- Who may decide -----------------------------------------------------------------------

    def may_decide_at_all(self, person: int, at: datetime) -> bool:
        """Active, a person (not a pipeline) and not an auditor."""
        user = self.users[person]
        return user.is_active and not user.is_service_account and not self.is_auditor(person, at)

    def holds(self, person: int, source: str, release: Release, at: datetime) -> bool:
        """Whether `person` holds, on their own, the authority a stage's approver source names."""
        if not self.may_decide_at_all(person, at):
            return False
        service = self.services[release.service_id]
        if source == "service_owners":
            return person in self.owners[service.pk]
        return any(
            self.covers(g, service, release.environment_id)
            for g in self.grants_of(person, SOURCE_ROLE[source], at)
        )

    def owning_teams(self, service_id: int) -> list[int]:
        primary = self.services[service_id].team_id
        return [primary, *(t for t in self.co_owners[service_id] if t != primary)]

    def in_teams(self, person: int, stage: ApprovalStage, service_id: int) -> bool:
        """When the policy names the owning teams, whether `person` belongs to one that counts."""
        if not stage.team_rule:
            return True
        teams = self.owning_teams(service_id)
        allowed = teams[:1] if stage.team_rule == "primary" else teams
        return any(person in self.members[t] for t in allowed)

    def delegation(
        self, delegate: int, principal: int, service_id: int, at: datetime
    ) -> Delegation | None:
        """A delegation from `principal` to `delegate` covering the service and in force at `at`
        that someone other than the delegate set up."""
        for d in self.delegations:
            if (
                d.delegate_id == delegate
                and d.delegator_id == principal
                and d.service_id in (None, service_id)
                and d.starts_at <= at < d.ends_at
                and (d.revoked_at is None or d.revoked_at > at)
                and d.created_by_id != delegate
            ):
                return d
        return None

    def needs_second_administrator(self, person: int) -> bool:
        """Whether a policy change by `person` must wait for another administrator."""
        approves = any(g.user_id == person and g.role in DECIDING_ROLES for g in self.grants)
        return approves or any(person in owners for owners in self.owners.values())


def conflicted(release: Release, change: ChangeRecord, meant: int | None) -> set[int]:
    """The people who may never decide `release`: its requester, the person its pipeline named
    (`meant`: whom the name denotes, known to the model whether or not Signoff resolved it) and
    the author of its change record."""
    ids = {release.requested_by_id, release.triggered_by_id, change.author_id, meant}
    return {i for i in ids if i is not None}


# --- The gate ---------------------------------------------------------------------------------


def expected_gate(
    release: Release,
    approval: ApprovalRequest,
    change: ChangeRecord,
    evidence: list[Evidence],
    now: datetime,
    digest: str | None = None,
) -> str:
    """What the gate must answer for `release` now, from the rows rather than the snapshot."""
    status = approval.status
    if status in (ApprovalRequest.Status.REJECTED, ApprovalRequest.Status.WITHDRAWN):
        return "rejected"
    if (
        status == ApprovalRequest.Status.EXPIRED
        or (status == ApprovalRequest.Status.PENDING and approval.expires_at <= now)
        or (
            status == ApprovalRequest.Status.APPROVED
            and approval.valid_until is not None
            and approval.valid_until <= now
        )
    ):
        return "expired"
    if precondition_failures(approval.plan, change, evidence) or (
        digest is not None and digest != release.digest
    ):
        return "blocked"
    return "pending" if status == ApprovalRequest.Status.PENDING else "approved"


def precondition_failures(plan: dict, change: ChangeRecord, evidence: list[Evidence]) -> int:
    """How many of the frozen plan's preconditions fail now (policy errors count too)."""
    failures = len(plan.get("errors") or [])
    if change.state in ("closed", "cancelled") or (
        plan.get("itsm_change") and change.state not in ("scheduled", "implement", "review")
    ):
        failures += 1
    latest: dict[str, Evidence] = {}
    for item in sorted(evidence, key=lambda e: (e.created_at, e.pk)):
        latest[item.kind] = item
    for requirement in plan.get("evidence") or []:
        item = latest.get(requirement["kind"])
        if item is None or item.status != requirement["status"]:
            failures += 1
            continue
        limit = requirement.get("max_failed")
        if limit is None:
            continue
        failed = item.summary.get("failed") if isinstance(item.summary, dict) else None
        usable = isinstance(failed, int) and not isinstance(failed, bool) and failed >= 0
        if not usable or failed > limit:
            failures += 1
    return failures


def standing(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.revoked_at is None]


def seat(decision: Decision) -> int:
    """Whose seat a decision fills: the principal's when made as a delegate."""
    return decision.on_behalf_of_id or decision.approver_id
