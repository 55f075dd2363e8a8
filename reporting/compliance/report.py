"""The compliance report's rows: every release to a regulated environment of a service under a
framework (SOX, HIPAA, PCI...), requested in a period, whatever became of it.

Releases are read in keyset-paginated batches, each with a fixed number of queries (the
releases with their people, then their decisions, evidence, deployments and emergency
exceptions), so a report of a million rows streams in flat memory and costs the same per batch.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC as UTC_ZONE
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet

from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import policy_emergency_settings
from approvals.models import ApprovalRequest, Decision, Deployment, Evidence, Release
from governance.models import Service, User
from governance.policy.engine import Plan
from governance.policy.evidence import EvidenceRequirement, snapshot_item
from governance.policy.evidence import problem as evidence_problem

BATCH_SIZE = 500
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FRAMEWORKS = tuple(Service.ComplianceFramework.values)

COLUMNS = (
    "change_ref",
    "service",
    "environment",
    "version",
    "digest",
    "requested_at",
    "requester",
    "triggered_by",
    "decisions",
    "sod_check",
    "required_evidence",
    "present_evidence",
    "required_checks",
    "exceptions",
    "deployments",
    "outcome",
)


@dataclass(frozen=True)
class ReportQuery:
    """What the report covers: a framework and a period of whole UTC days, both inclusive."""

    framework: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start 00:00 UTC, the day after end 00:00 UTC)."""
        first = datetime.combine(self.start, time.min, UTC_ZONE)
        return first, datetime.combine(self.end + timedelta(days=1), time.min, UTC_ZONE)

    def as_parameters(self) -> dict[str, str]:
        return {
            "framework": self.framework,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
        }

    @classmethod
    def from_parameters(cls, data: dict) -> ReportQuery:
        return cls(
            data["framework"], date.fromisoformat(data["from"]), date.fromisoformat(data["to"])
        )


@dataclass
class Row:
    """One release as the report shows it; `cells` in COLUMNS order, flags for the summary."""

    cells: dict[str, str]
    status: str
    deployed_unapproved: int = 0
    emergency_change_id: int | None = None
    passed_without_check: bool = False
    sod_failed: bool = False

    def values(self) -> list[str]:
        return [self.cells[name] for name in COLUMNS]


@dataclass
class Summary:
    """The figures on top of the PDF, added up row by row."""

    releases: int = 0
    by_outcome: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unapproved_deployments: int = 0
    passed_without_check: int = 0
    sod_failures: int = 0
    # Ids only, one per emergency change: several releases may ship under one emergency.
    emergency_change_ids: set[int] = field(default_factory=set)

    @property
    def emergency_changes(self) -> int:
        return len(self.emergency_change_ids)

    def add(self, row: Row) -> None:
        self.releases += 1
        self.by_outcome[row.status] += 1
        self.unapproved_deployments += row.deployed_unapproved
        if row.emergency_change_id is not None:
            self.emergency_change_ids.add(row.emergency_change_id)
        self.passed_without_check += row.passed_without_check
        self.sod_failures += row.sod_failed


def releases_in_scope(query: ReportQuery, user: User) -> QuerySet[Release]:
    """The releases the report covers that `user` may view (a scoped auditor sees their own)."""
    # Tags are a JSON list: compared here, case-insensitively, over the (small) catalogue, so
    # the filter works on every database Signoff runs on.
    services = [
        pk
        for pk, tags in Service.objects.values_list("pk", "compliance_tags")
        if query.framework in {str(tag).upper() for tag in tags or ()}
    ]
    start, end = query.window
    return Release.objects.restrict(user).filter(
        service__in=services,
        environment__regulated=True,
        created_at__gte=start,
        created_at__lt=end,
    )


class ComplianceReport:
    """The rows of one report for one person, batch by batch."""

    def __init__(self, query: ReportQuery, user: User, batch_size: int = BATCH_SIZE) -> None:
        self.query = query
        self.user = user
        self.batch_size = batch_size
        self.summary = Summary()
        self._control_labels = None

    def count(self) -> int:
        return releases_in_scope(self.query, self.user).count()

    def batches(self) -> Iterator[list[Row]]:
        """Rows in request order, `batch_size` releases at a time (keyset on created_at, pk)."""
        scope = releases_in_scope(self.query, self.user).order_by("created_at", "pk")
        after = None
        while True:
            page = scope if after is None else scope.filter(_after(*after))
            releases = list(page.select_related(*RELATED).only(*RELEASE_FIELDS)[: self.batch_size])
            if not releases:
                return
            rows = self._rows(releases)
            for row in rows:
                self.summary.add(row)
            yield rows
            if len(releases) < self.batch_size:
                return
            after = releases[-1].created_at, releases[-1].pk

    def rows(self) -> Iterator[Row]:
        for batch in self.batches():
            yield from batch

    def _rows(self, releases: list[Release]) -> list[Row]:
        related = _load_related(releases)
        labels = self._labels()
        return [build_row(release, related, labels) for release in releases]

    def _labels(self):
        # Read once per report: the active policy names the compensating controls.
        if self._control_labels is None:
            self._control_labels = policy_emergency_settings().control_label
        return self._control_labels


RELATED = ("service", "environment", "change__author", "approval", "requested_by", "triggered_by")
# Only what a row shows: a report streams every release of the period, and loading the gate
# snapshots, descriptions and plans of changes it never prints would cost most of its time.
RELEASE_FIELDS = (
    "created_at",
    "version",
    "digest",
    "triggered_by_name",
    "service__name",
    "environment__name",
    "change__ref",
    "change__type",
    "change__author__username",
    "approval__status",
    "approval__plan",
    "approval__decided_at",
    "approval__dual_control",
    "approval__retro_review",
    "requested_by__username",
    "triggered_by__username",
)


def _after(created_at: datetime, pk: int) -> Q:
    return Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk)


@dataclass
class Related:
    """A batch's decisions, evidence, deployments and emergencies, grouped by release/change."""

    decisions: dict[int, list[Decision]]
    evidence: dict[int, list[Evidence]]
    deployments: dict[int, list[Deployment]]
    emergencies: dict[int, EmergencyException]


DECISION_FIELDS = (
    "request",
    "verdict",
    "rationale",
    "step_up_method",
    "created_at",
    "revoked_at",
    "stage__name",
    "stage__approvers",
    "approver__username",
    "on_behalf_of__username",
)


def _load_related(releases: list[Release]) -> Related:
    """Four queries whatever the batch's size."""
    ids = [release.pk for release in releases]
    release_of = {r.approval.pk: r.pk for r in releases if _approval(r) is not None}
    decisions = (
        Decision.all_objects.filter(request__in=release_of)
        .select_related("stage", "approver", "on_behalf_of")
        .only(*DECISION_FIELDS)
        .order_by("created_at", "pk")
    )
    evidence = (
        Evidence.objects.filter(release__in=ids)
        .only("release", "kind", "status", "summary", "created_at")
        .order_by("created_at", "pk")
    )
    deployments = (
        Deployment.objects.filter(release__in=ids)
        .only("release", "status", "approved", "digest", "created_at")
        .order_by("created_at", "pk")
    )
    emergencies = EmergencyException.objects.filter(change__in={r.change_id for r in releases})
    return Related(
        decisions=_grouped(decisions, lambda d: release_of[d.request_id]),
        evidence=_grouped(evidence, lambda e: e.release_id),
        deployments=_grouped(deployments, lambda d: d.release_id),
        emergencies={e.change_id: e for e in emergencies},
    )


def _grouped(rows: Iterable, key) -> dict[int, list]:
    grouped: dict[int, list] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


def build_row(release: Release, related: Related, control_label) -> Row:
    """One release's cells and summary flags, from rows already loaded."""
    approval = _approval(release)
    decisions = related.decisions.get(release.pk, [])
    evidence = related.evidence.get(release.pk, [])
    deployments = related.deployments.get(release.pk, [])
    emergency = related.emergencies.get(release.change_id)
    plan = Plan.from_dict(approval.plan) if approval else Plan()
    sod = sod_failures(release, decisions, approval)
    checks = required_check_failures(plan.evidence, evidence, approval, deployments)
    status = approval.status if approval else "no approval request"
    cells = {
        "change_ref": release.change.ref,
        "service": release.service.name,
        "environment": release.environment.name,
        "version": release.version,
        "digest": release.digest,
        "requested_at": stamp(release.created_at),
        "requester": release.requested_by.username,
        "triggered_by": _trigger(release),
        "decisions": " | ".join(_decision(d) for d in decisions),
        "sod_check": "pass" if not sod else "fail: " + "; ".join(sod),
        "required_evidence": "; ".join(_requirement(r) for r in plan.evidence),
        "present_evidence": "; ".join(f"{e.kind}:{e.status}" for e in evidence),
        "required_checks": _checks_cell(checks, status, deployments),
        "exceptions": _exception(emergency, approval, control_label),
        "deployments": " | ".join(_deployment(d) for d in deployments),
        "outcome": outcome(status, deployments),
    }
    return Row(
        cells=cells,
        status=status,
        deployed_unapproved=sum(1 for d in deployments if not d.approved),
        emergency_change_id=release.change_id
        if emergency is not None or release.change.type == "emergency"
        else None,
        passed_without_check=bool(checks),
        sod_failed=bool(sod),
    )


def _approval(release: Release) -> ApprovalRequest | None:
    try:
        return release.approval
    except ApprovalRequest.DoesNotExist:
        return None


def stamp(moment: datetime | None) -> str:
    """A UTC time as ISO 8601 to the second: "2026-12-01T09:30:00+00:00"."""
    return moment.astimezone(UTC_ZONE).isoformat(timespec="seconds") if moment else ""


def _trigger(release: Release) -> str:
    if release.triggered_by is not None:
        return release.triggered_by.username
    if release.triggered_by_name:
        return f"{release.triggered_by_name} (unresolved)"
    return ""


def _decision(decision: Decision) -> str:
    """`time stage (source): approver [for principal] verdict [step-up m] [revoked t]: why`."""
    stage = decision.stage
    who = decision.approver.username
    if decision.on_behalf_of is not None:
        who += f" on behalf of {decision.on_behalf_of.username}"
    text = f"{stamp(decision.created_at)} {stage.name} ({stage.approvers}): {who} "
    text += decision.verdict_past
    if decision.step_up_method:
        text += f", step-up {decision.step_up_method}"
    if decision.revoked_at:
        text += f", revoked {stamp(decision.revoked_at)}"
    return f"{text}: {decision.rationale}"


def sod_failures(
    release: Release, decisions: list[Decision], approval: ApprovalRequest | None
) -> list[str]:
    """What broke segregation of duties: a decision-maker who requested, triggered or wrote the
    change, a person counted twice in a stage, or (dual control) in two stages."""
    roles = {}
    for label, person in (
        ("change author", release.change.author),
        ("trigger", release.triggered_by),
        ("requester", release.requested_by),
    ):
        if person is not None:
            roles[person.pk] = label  # the requester's label wins when one person is several
    failures, seats = [], defaultdict(list)
    for decision in (d for d in decisions if d.revoked_at is None):
        for person in (decision.approver, decision.on_behalf_of):
            if person is not None and person.pk in roles:
                failures.append(
                    f"{person.username} ({roles[person.pk]}) decided in {decision.stage.name}"
                )
        seat = decision.on_behalf_of or decision.approver
        if decision.verdict == Decision.Verdict.APPROVE:
            seats[seat.username].append(decision.stage.name)
    for username, stages in seats.items():
        if len(stages) != len(set(stages)):
            failures.append(f"{username} counted twice in one stage")
        elif approval and approval.dual_control and len(stages) > 1:
            failures.append(f"{username} counted in {len(stages)} stages under dual control")
    return failures


def _requirement(requirement: EvidenceRequirement) -> str:
    text = f"{requirement.kind}:{requirement.status}"
    thresholds = requirement.threshold_words()
    return f"{text} ({', '.join(thresholds)})" if thresholds else text


def required_check_failures(
    requirements: list[EvidenceRequirement],
    evidence: list[Evidence],
    approval: ApprovalRequest | None,
    deployments: list[Deployment],
) -> list[str]:
    """Required evidence that was missing or not passing when the release passed: at its
    approval, and at each deployment the gate approved (the latest item of each kind then)."""
    moments = []
    if approval and approval.decided_at and approval.status == ApprovalRequest.Status.APPROVED:
        moments.append(("approval", approval.decided_at))
    moments += [("deployment", d.created_at) for d in deployments if d.approved]
    failures = []
    for moment_name, moment in moments:
        latest = {e.kind: e for e in evidence if e.created_at <= moment}
        for requirement in requirements:
            problem = _unmet(requirement, latest.get(requirement.kind))
            if problem:
                failures.append(f"{problem} at {moment_name} {stamp(moment)}")
    return failures


def _unmet(requirement: EvidenceRequirement, item: Evidence | None) -> str | None:
    if item is None:
        return f"{requirement.kind} missing"
    if item.status != requirement.status:
        return f"{requirement.kind} {item.status}"
    if requirement.max_failed is not None:
        failed = item.failed_count
        if failed is None or failed > requirement.max_failed:
            return f"{requirement.kind} failed count {failed if failed is not None else 'unknown'}"
    # Every other threshold (passed, skipped, coverage, findings, reviewer), as the gate says it.
    problem = evidence_problem(requirement, snapshot_item(item.status, item.summary))
    return problem.rstrip(".") if problem else None


def _checks_cell(failures: list[str], status: str, deployments: list[Deployment]) -> str:
    if failures:
        return "not met: " + "; ".join(failures)
    passed = status == ApprovalRequest.Status.APPROVED or any(d.approved for d in deployments)
    return "met" if passed else ""


def _exception(
    emergency: EmergencyException | None, approval: ApprovalRequest | None, control_label
) -> str:
    parts = []
    if emergency is not None:
        controls = [control_label(key) for key in emergency.controls]
        if emergency.control_notes:
            controls.append(emergency.control_notes)
        review = EmergencyException.Review(emergency.secondary_review).label
        parts += [
            f"emergency {stamp(emergency.starts_at)} to {stamp(emergency.ends_at)}",
            f"justification: {emergency.justification}",
            f"controls: {', '.join(controls) or 'none'}",
            f"secondary review: {review}",
        ]
    if approval and approval.retro_review:
        parts.append("retro review required")
    return "; ".join(parts)


def _deployment(deployment: Deployment) -> str:
    approved = "approved" if deployment.approved else "unapproved"
    return f"{stamp(deployment.created_at)} {deployment.status} {approved} {deployment.digest}"


def outcome(status: str, deployments: list[Deployment]) -> str:
    """The approval's status, then what happened: deployed, deployed unapproved, rolled back."""
    parts = [status]
    if any(d.approved and d.status == Deployment.Status.SUCCEEDED for d in deployments):
        parts.append("deployed")
    if any(not d.approved for d in deployments):
        parts.append("deployed unapproved")
    if any(d.status == Deployment.Status.ROLLED_BACK for d in deployments):
        parts.append("rolled back")
    return ", ".join(parts)


def parse_framework(value: str) -> str:
    """The framework's tag (SOX...) from any case; ValueError with a message if unknown."""
    wanted = (value or "").strip().upper()
    if not wanted:
        raise ValueError(f"Choose a framework: framework=sox (one of {', '.join(FRAMEWORKS)}).")
    if wanted not in FRAMEWORKS:
        raise ValueError(f"Unknown framework '{value}'; choose one of {', '.join(FRAMEWORKS)}.")
    return wanted


def parse_query(params) -> ReportQuery:
    """A ReportQuery from `framework`, `from` and `to`; ValueError naming what is wrong."""
    framework = parse_framework(params.get("framework", ""))
    days = {}
    for name in ("from", "to"):
        raw = (params.get(name) or "").strip()
        if not raw:
            raise ValueError(
                f"Give the period as from=YYYY-MM-DD and to=YYYY-MM-DD ({name} is missing)."
            )
        try:
            if not DAY.match(raw):
                raise ValueError(raw)
            days[name] = date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a date; write it as YYYY-MM-DD.") from None
    if days["from"] > days["to"]:
        raise ValueError(
            f"The period starts after it ends: from={days['from']} is later than to={days['to']}."
        )
    return ReportQuery(framework, days["from"], days["to"])
