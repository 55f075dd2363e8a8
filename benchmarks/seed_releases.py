"""Bulk-seed releases with their whole approval graph, in the proportions a busy org would have.

Releases come in promotion groups of three (dev → staging → production) sharing one change
record and one artifact. Plans are resolved by the real policy engine from the active policy;
stages, decisions and evidence follow from a status drawn per release: the newest 5% of releases
are mostly pending (the approvers' queues), the rest mostly approved, some rejected or expired.
Rows go in with COPY, one transaction per chunk, so an interrupted run leaves whole chunks.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Evidence, Release
from benchmarks.bulk import TableWriter, analyze, reset_sequence
from benchmarks.seed_org import Org, ServiceInfo
from changes.models import ChangeRecord
from governance.policy.engine import Plan, StageRequirement, evaluate
from governance.policy.reference import NO_INCIDENTS, NO_PLAN

CHUNK = 6000
ENV_ORDER = ("dev", "staging", "production")
RECENT_SHARE = 0.05
HISTORY = timedelta(days=730)
RECENT_WINDOW = timedelta(days=6)
PENDING_HOURS = 24 * 7
Status = ApprovalRequest.Status
StageStatus = ApprovalStage.Status
Log = Callable[[str], None]


@dataclass(frozen=True)
class Profile:
    """A plan the policy engine resolved, and its JSON form as frozen onto the request."""

    plan: Plan
    data: dict


@dataclass(frozen=True)
class Group:
    """One artifact promoted through the environments under one change record."""

    service: ServiceInfo
    change_type: str
    version: str
    digest: str
    developer: tuple[int, str]


class Writers:
    """One COPY buffer per table of the release graph, flushed in foreign-key order."""

    MODELS = (
        ChangeRecord,
        Release,
        ApprovalRequest,
        ApprovalStage,
        ApprovalStage.eligible_approvers.through,
        Decision,
        Evidence,
    )

    def __init__(self) -> None:
        (
            self.change,
            self.release,
            self.approval,
            self.stage,
            self.eligible,
            self.decision,
            self.evidence,
        ) = (TableWriter(model) for model in self.MODELS)

    def flush(self) -> int:
        return sum(
            writer.flush()
            for writer in (
                self.change,
                self.release,
                self.approval,
                self.stage,
                self.eligible,
                self.decision,
                self.evidence,
            )
        )

    @classmethod
    def tables(cls) -> list[str]:
        return [model._meta.db_table for model in cls.MODELS]


def bench_release_count(org: Org) -> int:
    return Release.objects.filter(requested_by=org.bot).count()


def seed_releases(org: Org, target: int, log: Log) -> int:
    """Top the benchmark releases up to `target`; returns how many were added."""
    existing = bench_release_count(org)
    if existing >= target:
        log(f"releases: {existing:,} present (target {target:,}); nothing to seed")
        return 0
    builder = GraphBuilder(org, target)
    started = time.perf_counter()
    for start in range(existing, target, CHUNK):
        stop = min(start + CHUNK, target)
        rows = builder.chunk(start, stop)
        rate = (stop - existing) / (time.perf_counter() - started)
        log(f"releases: {stop:,}/{target:,} ({rows:,} rows in this chunk, {rate:,.0f} releases/s)")
    for table in Writers.tables():
        reset_sequence(table)
    analyze(Writers.tables())
    return target - existing


class GraphBuilder:
    """Generates the rows of releases [start, stop) deterministically from their index."""

    w: Writers  # the buffers of the chunk being built

    def __init__(self, org: Org, target: int) -> None:
        self.org = org
        self.target = target
        self.recent_from = int(target * (1 - RECENT_SHARE))
        self.now = timezone.now()
        self.profiles: dict[tuple[int, str, str], Profile] = {}
        self.changes: dict[int, int] = {}

    def chunk(self, start: int, stop: int) -> int:
        """Build and COPY one chunk in its own transaction; returns the row count."""
        with transaction.atomic():
            self.w = Writers()
            self.changes = {}
            for index in range(start, stop):
                self.release(index)
            return self.w.flush()

    def group(self, number: int) -> Group:
        rng = random.Random(f"group-{number}")
        service = rng.choice(self.org.services)
        change_type = rng.choices(["standard", "normal", "emergency"], [30, 65, 5])[0]
        version = f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{number % 1000}"
        digest = "sha256:" + hashlib.sha256(f"bench-artifact-{number}".encode()).hexdigest()
        return Group(service, change_type, version, digest, rng.choice(service.developers))

    def created_at(self, index: int) -> datetime:
        if index < self.recent_from:
            start = self.now - HISTORY - RECENT_WINDOW - timedelta(days=1)
            return start + HISTORY * (index / max(self.recent_from, 1))
        share = (index - self.recent_from) / max(self.target - self.recent_from, 1)
        return self.now - RECENT_WINDOW + RECENT_WINDOW * share

    def release(self, index: int) -> None:
        """All rows of one release: change (once per group), release, request, stages, evidence."""
        rng = random.Random(index)
        group = self.group(index // 3)
        env = ENV_ORDER[index % 3]
        created = self.created_at(index)
        recent = index >= self.recent_from
        change_id = self.change(index, group, created, recent)
        profile = self.profile(group, env)
        status = _draw_status(rng, recent, bool(profile.plan.stages) and not profile.plan.errors)
        release_id = self.w.release.reserve()
        closed_at = self.stages_and_request(rng, release_id, group, profile, status, created)
        self.w.release.add(
            id=release_id,
            service_id=group.service.id,
            environment_id=self.org.environments[env][0],
            version=group.version,
            image=f"registry.example.com/{group.service.team}/{group.service.slug}",
            digest=group.digest,
            change_id=change_id,
            requested_by_id=self.org.bot.pk,
            triggered_by_id=group.developer[0],
            triggered_by_name=group.developer[1],
            pipeline_provider="gitlab",
            pipeline_run_url=f"https://gitlab.example.com/{group.service.slug}/-/pipelines/{index}",
            idempotency_key=f"bench-{index}",
            created_at=created,
            deployed_at=closed_at + timedelta(minutes=30)
            if status == Status.APPROVED and rng.random() < 0.9
            else None,
        )
        self.evidence(rng, release_id, created)

    def change(self, index: int, group: Group, created: datetime, recent: bool) -> int:
        """The group's change record, made with its first release (or found, across chunks)."""
        number = index // 3
        if number not in self.changes:
            ref = f"BENCH{number:08d}"
            found = None
            if index % 3:  # the chunk starts mid-group: an earlier chunk made the record
                found = ChangeRecord.objects.filter(ref=ref).values_list("pk", flat=True).first()
            self.changes[number] = found or self._new_change(ref, number, group, created, recent)
        return self.changes[number]

    def _new_change(
        self, ref: str, number: int, group: Group, created: datetime, recent: bool
    ) -> int:
        rng = random.Random(f"change-{number}")
        states = (
            (["authorise", "scheduled"], [80, 20])
            if recent
            else (["closed", "scheduled", "cancelled"], [85, 10, 5])
        )
        return self.w.change.add(
            ref=ref,
            type=group.change_type,
            title=f"{group.service.slug} {group.version}",
            state=rng.choices(*states)[0],
            author_id=group.developer[0],
            created_at=created,
        )

    def profile(self, group: Group, env: str) -> Profile:
        """The real policy engine's plan for this kind of release (cached per service/env/type)."""
        key = (group.service.id, env, group.change_type)
        if key not in self.profiles:
            plan = evaluate(
                self.org.policy_version.source, _context(group, env, self.org.environments[env][1])
            )
            self.profiles[key] = Profile(plan, plan.to_dict())
        return self.profiles[key]

    def stages_and_request(
        self,
        rng: random.Random,
        release_id: int,
        group: Group,
        profile: Profile,
        status: str,
        created: datetime,
    ) -> datetime:
        """Queue the approval request and its stages; returns the time of the last decision."""
        plan = profile.plan
        approval_id = self.w.approval.reserve()
        current = rng.randrange(len(plan.stages)) if status != Status.APPROVED else len(plan.stages)
        clock = created
        for position, requirement in enumerate(plan.stages, start=1):
            clock = self.stage(
                rng,
                approval_id,
                group,
                plan,
                requirement,
                position,
                _stage_state(position - 1, current, status),
                clock,
            )
        expires = created + timedelta(hours=PENDING_HOURS)
        decided = {Status.PENDING: None, Status.EXPIRED: expires}.get(status, clock)
        valid = (
            decided + timedelta(hours=plan.approval_valid_hours)
            if status == Status.APPROVED and plan.approval_valid_hours
            else None
        )
        self.w.approval.add(
            id=approval_id,
            release_id=release_id,
            policy_version_id=self.org.policy_version.pk,
            plan=profile.data,
            status=status,
            dual_control=plan.dual_control,
            retro_review=plan.retro_review,
            requested_at=created,
            expires_at=expires,
            decided_at=decided,
            valid_until=valid,
        )
        return clock

    def stage(
        self,
        rng: random.Random,
        approval_id: int,
        group: Group,
        plan: Plan,
        requirement: StageRequirement,
        position: int,
        state: str,
        clock: datetime,
    ) -> datetime:
        """Queue one stage with its eligible approvers and decisions; returns when it closed."""
        people = self.eligible(group.service, requirement.approvers)
        active = state in (StageStatus.ACTIVE, StageStatus.APPROVED, StageStatus.REJECTED)
        sla = timedelta(hours=requirement.sla_hours or 24)
        closed = clock + sla * rng.uniform(0.05, 0.9) if active else clock
        approvals = _approvals(rng, state, requirement.count, len(people))
        stage_id = self.w.stage.add(
            request_id=approval_id,
            position=position,
            order=requirement.order,
            key=requirement.key,
            name=requirement.name,
            approvers=requirement.approvers,
            required_count=requirement.count,
            step_up=requirement.step_up,
            sla_hours=requirement.sla_hours,
            due_at=clock + sla if active and requirement.sla_hours else None,
            status=state,
            approval_count=approvals,
            activated_at=clock if active else None,
            completed_at=closed if state in (StageStatus.APPROVED, StageStatus.REJECTED) else None,
            rules=requirement.rules,
        )
        for person in people:
            self.w.eligible.add(approvalstage_id=stage_id, user_id=person)
        deciders = rng.sample(people, approvals + (state == StageStatus.REJECTED))
        for n, person in enumerate(deciders):
            verdict = "reject" if n >= approvals else "approve"
            self.decision(
                rng,
                approval_id,
                stage_id,
                person,
                verdict,
                group,
                plan,
                clock + (closed - clock) * (n + 1) / len(deciders),
            )
        return closed

    def eligible(self, service: ServiceInfo, source: str) -> list[int]:
        people = {
            "service_approvers": service.approvers,
            "cab": self.org.cab,
            "security_approvers": self.org.security,
            "service_owners": service.owners,
        }[source]
        return [p for p in people if p != self.org.bot.pk]

    def decision(
        self,
        rng: random.Random,
        approval_id: int,
        stage_id: int,
        person: int,
        verdict: str,
        group: Group,
        plan: Plan,
        at: datetime,
    ) -> None:
        rationale = (
            "Diff, tests and rollback plan reviewed; fine to ship."
            if verdict == "approve"
            else "Integration tests are flaky against the sandbox; fix first."
        )
        self.w.decision.add(
            request_id=approval_id,
            stage_id=stage_id,
            approver_id=person,
            verdict=verdict,
            rationale=rationale,
            digest=group.digest,
            dual_control=plan.dual_control,
            channel="api" if rng.random() < 0.2 else "ui",
            created_at=at,
        )

    def evidence(self, rng: random.Random, release_id: int, created: datetime) -> None:
        """Tests and a security scan for every release, an SBOM for a third of them."""
        failed = rng.randint(1, 12) if rng.random() < 0.04 else 0
        items = [
            (
                "tests",
                "failed" if failed else "passed",
                {"passed": rng.randint(200, 3000), "failed": failed, "skipped": rng.randint(0, 20)},
            ),
            ("security-scan", "passed", {"critical": 0, "high": rng.randint(0, 2)}),
        ]
        if rng.random() < 0.33:
            items.append(("sbom", "passed", {"components": rng.randint(80, 900)}))
        for n, (kind, status, summary) in enumerate(items):
            self.w.evidence.add(
                release_id=release_id,
                kind=kind,
                status=status,
                summary=summary,
                url=f"https://ci.example.com/runs/{release_id}/{kind}",
                reported_by_id=self.org.bot.pk,
                created_at=created - timedelta(minutes=5 - n),
            )


def sample_plans(org: Org) -> list[dict]:
    """Distinct plans over a spread of services and environments, for ledger payloads."""
    builder = GraphBuilder(org, 1)
    found: dict[str, dict] = {}
    for number, service in enumerate(org.services[:5]):
        group = builder.group(number)
        group = Group(service, "normal", group.version, group.digest, service.developers[0])
        for env in ENV_ORDER:
            data = builder.profile(group, env).data
            found[json.dumps(data, sort_keys=True)] = data
    return list(found.values())


def _context(group: Group, env: str, risk: str) -> dict:
    """The policy context of `approvals.context.policy_context`, from plain data."""
    service = group.service
    return {
        "release": {"version": group.version, "image": service.slug, "digest": group.digest},
        "service": {
            "slug": service.slug,
            "name": service.slug,
            "tier": service.tier,
            "compliance_tags": service.tags,
            "team": service.team,
            "teams": [service.team],
            "vendor": "",
            "business_function": "",
        },
        "environment": {
            "slug": env,
            "name": env,
            "risk": risk,
            "regulated": env == "production",
            "platform": "on_premises",
            "platforms": ["on_premises"],
            "targets": [],
        },
        "change": {"ref": "", "type": group.change_type, "state": "authorise"},
        "evidence": {},
        "incidents": NO_INCIDENTS,
        "plan": dict(NO_PLAN),
    }


def _draw_status(rng: random.Random, recent: bool, has_stages: bool) -> str:
    if not has_stages:
        return Status.APPROVED
    roll = rng.random()
    if recent:
        return Status.PENDING if roll < 0.7 else Status.APPROVED if roll < 0.95 else Status.REJECTED
    return Status.APPROVED if roll < 0.88 else Status.REJECTED if roll < 0.93 else Status.EXPIRED


def _stage_state(position: int, current: int, status: str) -> str:
    if position < current:
        return StageStatus.APPROVED
    if position > current:
        return StageStatus.CANCELLED if status == Status.REJECTED else StageStatus.WAITING
    return StageStatus.REJECTED if status == Status.REJECTED else StageStatus.ACTIVE


def _approvals(rng: random.Random, state: str, required: int, eligible: int) -> int:
    """Distinct approvals a stage holds in `state`: all it needs, or fewer while open."""
    if state == StageStatus.APPROVED:
        return min(required, eligible)
    if state == StageStatus.ACTIVE:
        return rng.randrange(min(required, eligible))
    if state == StageStatus.REJECTED:
        return rng.randrange(min(required, eligible))  # some approvals may precede a reject
    return 0
