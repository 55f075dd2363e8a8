"""Workflow feedback by policy rule: what requesters say about each rule next to what it cost
and what it caught.

A stage lists the rules that produced it (`ApprovalStage.rules`), so a rule applies to a release
when one of the release's stages names it. For the releases requested in a period, per rule:
how many it applied to, the requesters' ratings of those releases' workflows (useful / noise)
with the latest comments, the median time its stages kept a release waiting (activation to
decision), the rejections at its stages, and, for context, the failed or rolled-back
deployments of its releases. Four queries, whatever the number of releases.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count
from django.utils import timezone

from approvals.models import ApprovalStage, Deployment, Release
from governance.policy.engine import parse
from governance.policy.services import active_policy_version
from reporting.reviews.models import WorkflowFeedback

RECENT_COMMENTS = 3
GONE = "(no longer in the active policy)"


@dataclass
class RuleFeedback:
    """The numbers of one policy rule over the period."""

    rule: str
    description: str = ""
    releases: set[int] = field(default_factory=set)
    useful: int = 0
    noise: int = 0
    waits: list[timedelta] = field(default_factory=list)
    rejections: int = 0
    failed_deployments: int = 0
    comments: list[dict] = field(default_factory=list)

    @property
    def release_count(self) -> int:
        return len(self.releases)

    @property
    def ratings(self) -> int:
        return self.useful + self.noise

    @property
    def median_wait(self) -> timedelta | None:
        return statistics.median(self.waits) if self.waits else None

    @property
    def median_wait_hours(self) -> float | None:
        wait = self.median_wait
        return round(wait.total_seconds() / 3600, 2) if wait is not None else None

    @property
    def median_wait_label(self) -> str:
        """Minutes under an hour ("12 min"), hours above ("3.5 h"); a dash with no decision."""
        wait = self.median_wait
        if wait is None:
            return "—"
        if wait < timedelta(hours=1):
            return f"{int(wait.total_seconds() // 60)} min"
        return f"{wait.total_seconds() / 3600:.1f} h"


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The days start..end (both included) as instants in the site's time zone."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, zone),
        datetime.combine(end + timedelta(days=1), time.min, zone),
    )


def feedback_by_rule(start: date, end: date) -> list[RuleFeedback]:
    """Every rule that produced a stage of a release requested in the period, noisiest first."""
    low, high = period_bounds(start, end)
    releases = Release.objects.filter(created_at__gte=low, created_at__lt=high)
    rules: dict[str, RuleFeedback] = {}
    per_release: dict[int, set[str]] = defaultdict(set)
    stages = ApprovalStage.objects.filter(request__release__in=releases).values_list(
        "request__release_id", "rules", "status", "activated_at", "completed_at"
    )
    for release_id, stage_rules, status, activated_at, completed_at in stages:
        for rule_id in {_rule_id(entry) for entry in stage_rules or []}:
            row = rules.setdefault(rule_id, RuleFeedback(rule_id))
            row.releases.add(release_id)
            per_release[release_id].add(rule_id)
            if status == ApprovalStage.Status.REJECTED:
                row.rejections += 1
            if activated_at and completed_at:
                row.waits.append(completed_at - activated_at)
    _add_ratings(rules, per_release, releases)
    _add_failures(rules, per_release, releases)
    _add_descriptions(rules)
    return sorted(rules.values(), key=lambda r: (-r.noise, -r.release_count, r.rule))


def _rule_id(entry: str) -> str:
    """The rule behind a stage's entry: an SLA rule's reads "business-critical-sla (SLA
    business-critical)", the rule's id then the SLA it applied."""
    return entry.split(" (SLA ", 1)[0]


def _add_ratings(rules: dict, per_release: dict, releases) -> None:
    ratings = (
        WorkflowFeedback.objects.filter(release__in=releases)
        .values_list("release_id", "rating", "comment", "updated_at", "rated_by__username")
        .order_by("-updated_at", "-pk")
    )
    for release_id, rating, comment, updated_at, username in ratings:
        for rule_id in per_release.get(release_id, ()):
            row = rules[rule_id]
            if rating == WorkflowFeedback.Rating.USEFUL:
                row.useful += 1
            else:
                row.noise += 1
            if comment and len(row.comments) < RECENT_COMMENTS:
                row.comments.append(
                    {
                        "release": release_id,
                        "rating": rating,
                        "text": comment,
                        "by": username,
                        "at": updated_at,
                    }
                )


def _add_failures(rules: dict, per_release: dict, releases) -> None:
    failed = (
        Deployment.objects.filter(
            release__in=releases,
            status__in=[Deployment.Status.FAILED, Deployment.Status.ROLLED_BACK],
        )
        .values("release_id")
        .annotate(count=Count("pk"))
        .values_list("release_id", "count")
    )
    for release_id, count in failed:
        for rule_id in per_release.get(release_id, ()):
            rules[rule_id].failed_deployments += count


def _add_descriptions(rules: dict) -> None:
    """Each rule's description from the active policy (parsed once per policy text)."""
    version = active_policy_version()
    known = {rule.id: rule.description for rule in parse(version.source)} if version else {}
    for rule_id, row in rules.items():
        row.description = known.get(rule_id, GONE)


CSV_HEADER = [
    "rule",
    "description",
    "releases",
    "useful",
    "noise",
    "median_wait_hours",
    "rejections",
    "failed_or_rolled_back_deployments",
]


def csv_rows(rows: list[RuleFeedback]) -> Iterator[list]:
    yield CSV_HEADER
    for row in rows:
        yield [
            row.rule,
            row.description,
            row.release_count,
            row.useful,
            row.noise,
            "" if row.median_wait_hours is None else row.median_wait_hours,
            row.rejections,
            row.failed_deployments,
        ]


# --- Useful vs noise per rule, drawn on the server as SVG ---------------------------------------

CHART_WIDTH = 760
LABEL_WIDTH = 200
ROW_HEIGHT = 26
BAR_HEIGHT = 16
TOP = 8


def ratings_chart(rows: list[RuleFeedback]) -> dict:
    """Geometry of a horizontal stacked bar per rated rule: useful (green) then noise (red)."""
    rated = [row for row in rows if row.ratings]
    most = max((row.ratings for row in rated), default=1)
    scale = (CHART_WIDTH - LABEL_WIDTH - 40) / most
    bars = []
    for index, row in enumerate(rated):
        y = TOP + index * ROW_HEIGHT
        useful_width = round(row.useful * scale, 1)
        bars.append(
            {
                "rule": row.rule,
                "label_y": y + BAR_HEIGHT - 3,
                "y": y,
                "useful_width": useful_width,
                "noise_x": LABEL_WIDTH + useful_width,
                "noise_width": round(row.noise * scale, 1),
                "total_x": LABEL_WIDTH + useful_width + round(row.noise * scale, 1) + 6,
                "title": f"{row.rule}: {row.useful} useful, {row.noise} noise",
                "useful": row.useful,
                "noise": row.noise,
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": TOP * 2 + ROW_HEIGHT * max(len(rated), 1),
        "label_x": LABEL_WIDTH - 8,
        "left": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "bars": bars,
        "description": _describe(rated),
    }


def _describe(rated: list[RuleFeedback]) -> str:
    """The chart in one sentence for screen readers (the table has every number)."""
    if not rated:
        return "Nobody rated a workflow in this period."
    noisiest = max(rated, key=lambda row: (row.noise, -row.useful))
    return f"{len(rated)} rules rated; the most noise, {noisiest.noise}, for {noisiest.rule}."
