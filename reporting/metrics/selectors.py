"""The metrics, computed on the database from the rollups plus the live rows still open.

Every selector takes the page's `Filters` (period, service, team, environment and the viewer's
scope) and answers in a constant number of queries whatever the data size:

- time to approve: approved requests (decided_at - requested_at) by change type, environment,
  service or team; by stage, the waits of approved stages; by approver, their approvals' waits
  from the stage's activation. Mean, p50 and p90 (percentile_cont: linear interpolation
  between the two nearest values, as PostgreSQL's ordered-set aggregate computes it).
- bottlenecks: waiting time summed per stage (finished, plus still open now) and per approver.
- SLA: per stage key, finished stages that met or missed their due time, plus open stages
  already overdue, which count as breaches.
- abandonment: requests closed in the period that were superseded, withdrawn or expired, plus
  pending requests whose expiry passed in the period without anybody deciding (never decided).
- outcomes by delay: among approved releases that were deployed, the share with a failed
  deployment (or failed verification) and with a rollback, per bucket of time to approve.
- exceptions and unapproved deployments per quarter: emergencies declared, freeze overrides
  confirmed, releases deployed without the gate's approval.

Facts count in the period they closed (decided, completed); open rows count while open.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from django.contrib.postgres.fields import ArrayField
from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DurationField,
    F,
    FloatField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import TruncQuarter
from django.utils import timezone

from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, ApprovalStage, Release
from changes.models import FreezeOverride
from governance.models import Environment, Service, Team, User
from reporting.metrics.models import (
    Abandonment,
    DecisionFact,
    DelayBucket,
    ReleaseFact,
    StageFact,
)

PERCENTILES = (("p50", 0.5), ("p90", 0.9))


@dataclass(frozen=True)
class Filters:
    """What a page shows: a period (whole days), optional service/team/environment, and the
    services the viewer may see (None: everything)."""

    start: date
    end: date
    now: datetime
    service: Service | None = None
    team: Team | None = None
    environment: Environment | None = None
    scope: QuerySet[Service] | None = None

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, timezone.get_current_timezone())

    @property
    def until(self) -> datetime:
        """The instant after the period's last day (exclusive)."""
        return self.since + timedelta(days=(self.end - self.start).days + 1)

    def narrow(
        self,
        rows: QuerySet,
        moment: str | None,
        *,
        service: str = "service",
        team: str = "team",
        environment: str = "environment",
    ) -> QuerySet:
        """`rows` whose `moment` lies in the period (None: any time), of the chosen service,
        team and environment, inside the viewer's scope. The paths default to the facts' own
        copies of the dimensions; live rows pass the paths through their release."""
        if moment is not None:
            rows = rows.filter(**{f"{moment}__gte": self.since, f"{moment}__lt": self.until})
        chosen = {service: self.service, team: self.team, environment: self.environment}
        rows = rows.filter(**{path: value for path, value in chosen.items() if value is not None})
        if self.scope is not None:
            rows = rows.filter(**{f"{service}__in": self.scope})
        return rows


# Paths to the dimensions from rows that are not facts.
OF_RELEASE = {"team": "service__team"}
OF_REQUEST = {
    "service": "release__service",
    "team": "release__service__team",
    "environment": "release__environment",
}
OF_STAGE = {key: f"request__{path}" for key, path in OF_REQUEST.items()}
OF_EMERGENCY = {"team": "service__team", "environment": "change__releases__environment"}


# --- Percentiles on the database ------------------------------------------------------------------


class PercentilesCont(Aggregate):
    """PostgreSQL's percentile_cont(ARRAY[fractions]) WITHIN GROUP (ORDER BY expression): every
    fraction from one sort of the group, as an array in the fractions' order."""

    function = "percentile_cont"
    template = "%(function)s(ARRAY[%(fractions)s]) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = ArrayField(FloatField())

    def __init__(self, expression, fractions: tuple[float, ...], **extra) -> None:
        listed = ", ".join(f"{float(fraction)!r}::float8" for fraction in fractions)
        super().__init__(expression, fractions=listed, **extra)


def percentile_cont(ordered: list[float], fraction: float) -> float:
    """The same interpolation in Python, for SQLite (which has no ordered-set aggregates)."""
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(rows: QuerySet, group: str, value: str) -> list[dict]:
    """Per `group`: count, total, mean, p50 and p90 of `value`, in one query, most rows first."""
    if connection.vendor == "postgresql":
        fractions = tuple(fraction for _, fraction in PERCENTILES)
        summary = (
            rows.values(group)
            .annotate(
                count=Count("pk"),
                total=Sum(value),
                mean=Avg(value),
                percentiles=PercentilesCont(value, fractions),
            )
            .order_by()
        )
        found = [_with_percentiles(row, group) for row in summary]
    else:
        found = _summarise_in_python(rows.values_list(group, value).order_by(group, value))
    return sorted(found, key=lambda row: (-row["count"], str(row["label"]).casefold()))


def _with_percentiles(row: dict, group: str) -> dict:
    named = zip((name for name, _ in PERCENTILES), row.pop("percentiles"), strict=True)
    return {**row, **dict(named), "label": row.pop(group)}


def _summarise_in_python(pairs) -> list[dict]:
    values: dict = defaultdict(list)
    for label, amount in pairs:
        values[label].append(amount)
    return [
        {
            "label": label,
            "count": len(ordered),
            "total": sum(ordered),
            "mean": sum(ordered) / len(ordered),
            **{name: percentile_cont(ordered, fraction) for name, fraction in PERCENTILES},
        }
        for label, ordered in values.items()
    ]


# --- Time to approve ------------------------------------------------------------------------------

# Dimension → (facts, what is timed, the label grouped by).
DIMENSIONS = {
    "change_type": ("release", "change_type"),
    "environment": ("release", "environment__name"),
    "service": ("release", "service__name"),
    "team": ("release", "team__name"),
    "stage": ("stage", "name"),
    "approver": ("decision", "approver"),
}


def time_to_approve(filters: Filters, by: str) -> list[dict]:
    """Mean, p50 and p90 (seconds) of the time to approve, per value of the dimension `by`."""
    kind, label = DIMENSIONS[by]
    if kind == "release":
        facts = ReleaseFact.objects.filter(outcome=ApprovalRequest.Status.APPROVED)
        return summarise(filters.narrow(facts, "decided_at"), label, "approve_seconds")
    if kind == "stage":
        facts = StageFact.objects.filter(outcome=ApprovalStage.Status.APPROVED)
        return summarise(filters.narrow(facts, "completed_at"), label, "wait_seconds")
    facts = DecisionFact.objects.filter(verdict="approve")
    return _named(summarise(filters.narrow(facts, "decided_at"), label, "wait_seconds"))


def _named(rows: list[dict]) -> list[dict]:
    """Approvers' ids replaced by their usernames, read in one query.

    Grouping by the id alone, without joining people, keeps the aggregate a scan of the facts
    (a join's estimate can turn it into a nested loop over every approver)."""
    names = dict(
        User.objects.filter(pk__in=[row["label"] for row in rows]).values_list("pk", "username")
    )
    return [{**row, "label": names[row["label"]]} for row in rows]


# --- Bottlenecks and SLA --------------------------------------------------------------------------


def open_stages(filters: Filters) -> dict[str, dict]:
    """Per stage name: stages awaiting decisions now, their summed wait and how many are overdue.

    Live rows, narrowed by when they opened: a stage still open counts in the period it began.
    """
    waited = Value(filters.now) - F("activated_at")
    rows = filters.narrow(
        ApprovalStage.objects.filter(status=ApprovalStage.Status.ACTIVE),
        "activated_at",
        **OF_STAGE,
    )
    grouped = (
        rows.values("name")
        .annotate(
            count=Count("pk"),
            waiting=Sum(waited, output_field=DurationField()),
            overdue=Count("pk", filter=Q(due_at__lt=filters.now)),
        )
        .order_by()
    )
    return {row.pop("name"): row for row in grouped}


def bottleneck_stages(filters: Filters) -> list[dict]:
    """Stages by the waiting time they caused (finished plus open now), longest first."""
    finished = {
        row["label"]: row
        for row in summarise(
            filters.narrow(StageFact.objects, "completed_at"), "name", "wait_seconds"
        )
    }
    still_open = open_stages(filters)
    rows = []
    for name in finished.keys() | still_open.keys():
        done = finished.get(name, {"count": 0, "total": 0, "mean": None, "p90": None})
        now = still_open.get(name, {"count": 0, "waiting": timedelta(0)})
        waiting_now = int(now["waiting"].total_seconds()) if now["waiting"] else 0
        rows.append(
            {
                "label": name,
                "finished": done["count"],
                "total": done["total"],
                "mean": done["mean"],
                "p90": done["p90"],
                "open": now["count"],
                "waiting_now": waiting_now,
            }
        )
    return sorted(rows, key=lambda r: (-(r["total"] + r["waiting_now"]), r["label"].casefold()))


def bottleneck_people(filters: Filters) -> list[dict]:
    """Approvers by the waiting time before their decisions, longest first."""
    facts = filters.narrow(DecisionFact.objects, "decided_at")
    rows = _named(summarise(facts, "approver", "wait_seconds"))
    return sorted(rows, key=lambda r: (-r["total"], r["label"].casefold()))


def sla_attainment(filters: Filters) -> list[dict]:
    """Per stage with an SLA: its target, finished stages met/breached and open ones overdue."""
    facts = filters.narrow(StageFact.objects.filter(sla_seconds__isnull=False), "completed_at")
    grouped = (
        facts.values("name")
        .annotate(
            finished=Count("pk"),
            missed=Count("pk", filter=Q(breached=True)),
            shortest=Min("sla_seconds"),
            longest=Max("sla_seconds"),
        )
        .order_by()
    )
    still_open = open_stages(filters)
    rows = []
    for row in grouped:
        overdue = still_open.get(row["name"], {}).get("overdue", 0)
        judged = row["finished"] + overdue
        met = row["finished"] - row["missed"]
        rows.append(
            {
                **row,
                "label": row["name"],
                "breached": row["missed"],
                "met": met,
                "overdue": overdue,
                "attainment": met / judged,
                "breach_rate": (row["missed"] + overdue) / judged,
            }
        )
    return sorted(rows, key=lambda r: (-r["breach_rate"], r["label"].casefold()))


# --- Abandonment and outcomes ---------------------------------------------------------------------


def abandonment(filters: Filters) -> dict:
    """Requests that ended without being used, by reason, and every request judged."""
    closed = filters.narrow(ReleaseFact.objects, "decided_at")
    # One scan: every closed request counted by its reason, "" for those not abandoned.
    counts = dict(closed.values_list("abandonment").annotate(n=Count("pk")).order_by())
    total = sum(counts.values())
    never = filters.narrow(
        ApprovalRequest.objects.filter(
            status=ApprovalRequest.Status.PENDING, expires_at__lt=filters.now
        ),
        "expires_at",
        **OF_REQUEST,
    ).count()
    counts[Abandonment.NEVER_DECIDED] = never
    judged = total + never
    reasons = [
        {"reason": reason, "label": reason.label, "count": counts.get(reason, 0)}
        for reason in Abandonment
    ]
    for row in reasons:
        row["share"] = row["count"] / judged if judged else None
    abandoned = sum(row["count"] for row in reasons)
    return {"requests": judged, "abandoned": abandoned, "reasons": reasons}


def outcomes_by_delay(filters: Filters) -> list[dict]:
    """Per delay bucket: approved releases, those deployed, failed and rolled back."""
    facts = filters.narrow(
        ReleaseFact.objects.filter(outcome=ApprovalRequest.Status.APPROVED), "decided_at"
    )
    # Annotations named apart from the fields they count: a filter would read the annotation.
    counted = facts.values("delay_bucket").annotate(
        approved_count=Count("pk"),
        deployed_count=Count("pk", filter=Q(deployed=True)),
        failed_count=Count("pk", filter=Q(deployed=True, failed=True)),
        rolled_back_count=Count("pk", filter=Q(deployed=True, rolled_back=True)),
    )
    grouped = {
        row["delay_bucket"]: {
            name: row[f"{name}_count"] for name in ("approved", "deployed", "failed", "rolled_back")
        }
        for row in counted.order_by()
    }
    rows = []
    for bucket in DelayBucket:
        row = grouped.get(bucket, {"approved": 0, "deployed": 0, "failed": 0, "rolled_back": 0})
        deployed = row["deployed"]
        rows.append(
            {
                **row,
                "bucket": bucket.value,
                "label": bucket.label,
                "failure_rate": row["failed"] / deployed if deployed else None,
                "rollback_rate": row["rolled_back"] / deployed if deployed else None,
            }
        )
    return rows


# --- Per quarter ----------------------------------------------------------------------------------


def quarters(filters: Filters) -> list[date]:
    """The first day of every quarter touching the period."""
    first = filters.start.replace(month=(filters.start.month - 1) // 3 * 3 + 1, day=1)
    found = []
    while first <= filters.end:
        found.append(first)
        first += relativedelta(months=3)
    return found


def _per_quarter(rows: QuerySet, moment: str) -> dict[date, int]:
    # Distinct: an emergency narrowed by environment joins each of its change's releases.
    counted = (
        rows.annotate(quarter=TruncQuarter(moment))
        .values("quarter")
        .annotate(n=Count("pk", distinct=True))
        .order_by()
    )
    return {timezone.localtime(row["quarter"]).date(): row["n"] for row in counted}


def exceptions_by_quarter(filters: Filters) -> list[dict]:
    """Per quarter: emergency bypasses declared and freeze overrides confirmed."""
    emergencies = filters.narrow(EmergencyException.objects.all(), "starts_at", **OF_EMERGENCY)
    # Overrides name their release by id (changes sits below approvals): narrowed through it.
    releases = filters.narrow(Release.objects.all(), None, **OF_RELEASE)
    overrides = FreezeOverride.objects.filter(
        confirmed_at__gte=filters.since,
        confirmed_at__lt=filters.until,
        release_id__in=releases.values("pk"),
    )
    by_emergency = _per_quarter(emergencies, "starts_at")
    by_override = _per_quarter(overrides, "confirmed_at")
    return [
        {"quarter": q, "emergencies": by_emergency.get(q, 0), "overrides": by_override.get(q, 0)}
        for q in quarters(filters)
    ]


def unapproved_by_quarter(filters: Filters) -> list[dict]:
    """Per quarter: releases deployed without the gate's approval (their latest such report)."""
    releases = filters.narrow(Release.objects.all(), "unapproved_deployment_at", **OF_RELEASE)
    counted = _per_quarter(releases, "unapproved_deployment_at")
    return [{"quarter": q, "releases": counted.get(q, 0)} for q in quarters(filters)]
