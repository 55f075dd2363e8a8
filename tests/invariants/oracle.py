"""The rules, re-read from scratch: who holds which authority at a moment, what freezes and
incidents hold back (`Holds`: occurrences, scope by service or owning team, overrides, the
blocking threshold, direct dependencies, emergency exceptions) and what the gate must answer,
computed in plain Python from the stored rows.

Nothing here calls the product's selectors, authority or gate code: the model compares what the
product did with what these independent readings say, so a rule broken in the product cannot
also break the yardstick it is measured with.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, ApprovalStage, Decision, Evidence, Release
from changes.models import ChangeRecord, Freeze, FreezeOverride, Incident
from governance.models import Delegation, Environment, Role, RoleAssignment, Service, Team, User

# A policy's approver source → the role whose grant carries it ("service_owners" is ownership).
SOURCE_ROLE = {
    "service_approvers": Role.APPROVER,
    "cab": Role.CAB_MEMBER,
    "release_managers": Role.RELEASE_MANAGER,
}
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
    held_back: Holds | None = None  # freezes, overrides, incidents

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
        world.held_back = Holds.read(world.services)
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


# --- Freezes and incidents ---------------------------------------------------------------------

# The recurrences the model writes: none, or "every day, N times" (in UTC, so each occurrence is
# the first shifted by whole days).
DAILY_COUNT = "FREQ=DAILY;COUNT="
OPEN = ("triggered", "acknowledged")


@dataclass
class Holds:
    """Freezes, overrides and incidents as stored, and what they hold back at a moment."""

    services: dict[int, Service]
    risk: dict[int, str] = field(default_factory=dict)  # environment → risk
    freezes: list[Freeze] = field(default_factory=list)
    scope: dict[int, tuple[set[int], set[int], set[int]]] = field(default_factory=dict)
    overrides: list[FreezeOverride] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    affected: dict[int, set[int]] = field(default_factory=dict)  # incident → services
    depends_on: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    exceptions: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)  # by change

    @classmethod
    def read(cls, services: dict[int, Service]) -> Holds:
        holds = cls(services=services)
        holds.risk = dict(Environment.objects.values_list("pk", "risk"))
        holds.freezes = list(Freeze.objects.order_by("pk"))
        environments, services, teams = (defaultdict(set) for _ in range(3))
        for link, ids in (
            (Freeze.environments.through, environments),
            (Freeze.services.through, services),
            (Freeze.teams.through, teams),
        ):
            other = next(
                f.attname for f in link._meta.fields if f.attname not in ("id", "freeze_id")
            )
            for freeze_id, pk in link.objects.values_list("freeze_id", other):
                ids[freeze_id].add(pk)
        for freeze in holds.freezes:
            holds.scope[freeze.pk] = (
                environments[freeze.pk],
                services[freeze.pk],
                teams[freeze.pk],
            )
        holds.overrides = list(FreezeOverride.objects.order_by("pk"))
        holds.incidents = list(Incident.objects.order_by("pk"))
        for incident_id, service_id in Incident.services.through.objects.values_list(
            "incident_id", "service_id"
        ):
            holds.affected.setdefault(incident_id, set()).add(service_id)
        for service_id, other in Service.depends_on.through.objects.values_list(
            "from_service_id", "to_service_id"
        ):
            holds.depends_on[service_id].add(other)
        for change_id, starts_at, ends_at in EmergencyException.objects.values_list(
            "change_id", "starts_at", "ends_at"
        ):
            holds.exceptions[change_id] = (starts_at, ends_at)
        return holds

    # --- Freezes ------------------------------------------------------------------------------

    def occurring(self, freeze: Freeze, at: datetime) -> bool:
        """Whether one of the freeze's occurrences covers `at`, and it was not ended before."""
        if freeze.ended_at is not None and at >= freeze.ended_at:
            return False
        count = 1
        if freeze.recurrence:
            assert freeze.recurrence.startswith(DAILY_COUNT), freeze.recurrence
            assert freeze.time_zone == "UTC", "the model repeats freezes in UTC only"
            count = int(freeze.recurrence.removeprefix(DAILY_COUNT))
        return any(
            freeze.starts_at + timedelta(days=k) <= at < freeze.ends_at + timedelta(days=k)
            for k in range(count)
        )

    def covers(self, freeze: Freeze, service_id: int, environment_id: int) -> bool:
        """Whether the freeze's scope takes in this service (by its owning team today) there."""
        environments, services, teams = self.scope[freeze.pk]
        if environment_id not in environments:
            return False
        if not services and not teams:
            return True
        return service_id in services or self.services[service_id].team_id in teams

    def freezes_at(self, kind: str, service_id: int, environment_id: int, at: datetime):
        return [
            f
            for f in self.freezes
            if f.kind == kind
            and self.covers(f, service_id, environment_id)
            and self.occurring(f, at)
        ]

    def override(self, freeze: Freeze, release_id: int, at: datetime) -> FreezeOverride | None:
        """A confirmed override of this freeze for this release, not expired at `at`."""
        for o in self.overrides:
            if (
                o.freeze_id == freeze.pk
                and o.release_id == release_id
                and o.confirmed_at is not None
                and o.confirmed_at <= at < o.expires_at
            ):
                return o
        return None

    def excepted(self, change: ChangeRecord, at: datetime) -> bool:
        """Whether `change` is an emergency change whose exception is in force at `at`."""
        window = self.exceptions.get(change.pk)
        return (
            change.type == ChangeRecord.Type.EMERGENCY
            and window is not None
            and window[0] <= at < window[1]
        )

    def frozen(self, release: Release, change: ChangeRecord, at: datetime) -> list[Freeze]:
        """The hard freezes holding `release` back at `at`: only an emergency change inside its
        exception passes them, or an override of that freeze for that release."""
        if self.excepted(change, at):
            return []
        hard = self.freezes_at("hard", release.service_id, release.environment_id, at)
        return [f for f in hard if self.override(f, release.pk, at) is None]

    # --- Incidents ----------------------------------------------------------------------------

    def blocking(self, service_id: int) -> list[Incident]:
        """Open incidents at or above the threshold on the service or a direct dependency."""
        near = {service_id, *self.depends_on[service_id]}
        return [
            i
            for i in self.incidents
            if i.status in OPEN
            and ((i.severity is not None and i.severity <= 1) or i.urgency == "high")
            and self.affected.get(i.pk, set()) & near
        ]

    def held_by_incidents(
        self, release: Release, change: ChangeRecord, at: datetime
    ) -> list[Incident]:
        """Blocking incidents holding a release to a high-risk environment; none holds an
        emergency change inside its exception."""
        if self.risk[release.environment_id] != "high" or self.excepted(change, at):
            return []
        return self.blocking(release.service_id)

    def held(self, release: Release, change: ChangeRecord, at: datetime) -> bool:
        """Held back: by a freeze or an incident, or as an emergency change outside (or
        without) its exception, whose releases take the normal path."""
        outside = change.type == ChangeRecord.Type.EMERGENCY and not self.excepted(change, at)
        return bool(
            outside
            or self.frozen(release, change, at)
            or self.held_by_incidents(release, change, at)
        )


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
    held: bool = False,
) -> str:
    """What the gate must answer for `release` now, from the rows rather than the snapshot;
    `held`: a hard freeze or a blocking incident holds it back (see `Holds.held`)."""
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
    if (
        precondition_failures(approval.plan, change, evidence)
        or held
        or (digest is not None and digest != release.digest)
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
        summary = item.summary if isinstance(item.summary, dict) else {}
        for name, limit, floor in (
            ("failed", requirement.get("max_failed"), False),
            ("skipped", requirement.get("max_skipped"), False),
            ("passed", requirement.get("min_passed"), True),
        ):
            if limit is None:
                continue
            value = summary.get(name)
            usable = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if not usable or (value < limit if floor else value > limit):
                failures += 1
    return failures


def standing(decisions: list[Decision]) -> list[Decision]:
    return [d for d in decisions if d.revoked_at is None]


def seat(decision: Decision) -> int:
    """Whose seat a decision fills: the principal's when made as a delegate."""
    return decision.on_behalf_of_id or decision.approver_id
