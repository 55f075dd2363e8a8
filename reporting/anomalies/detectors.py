"""The detectors: each reads the decisions of a rolling window and returns what looks unusual.

Every detector compares recent behaviour (the evaluation window, the last day by default) with
a baseline (the last 90 days by default) of the same person or team, and returns `Finding`s.
A finding's fingerprint names its kind, subject and period, so the service can store each one
once however often the detectors run:

- decision-level findings (rubber-stamping, off-hours, new device or address) use the
  decision itself as the period;
- a volume spike uses the day (UTC); reciprocity and never-rejecting use the month (UTC), so a
  pattern that persists is raised again at most monthly.

Thresholds are settings read at call time (see `Thresholds.from_settings`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate

from approvals.models import Decision
from changes.models import ChangeRecord
from governance.models import Service, Team, User


@dataclass(frozen=True)
class Thresholds:
    """How far behaviour must deviate before it is an anomaly; every value is a setting."""

    baseline_days: int = 90  # the history behaviour is compared with
    evaluation_hours: int = 24  # the recent stretch that is judged
    rubber_stamp_seconds: int = 30  # an approval of a large change this soon after activation
    off_hours_coverage_percent: int = 95  # usual hours hold this share of a person's decisions
    off_hours_margin: int = 2  # "far" outside: at least this many hours from a usual one
    off_hours_min_decisions: int = 20  # fewer in the baseline: no usual hours yet
    volume_sigmas: int = 3  # today above mean + this many standard deviations
    volume_min_days: int = 14  # days with decisions needed before a spike can be told
    volume_min_decisions: int = 5  # fewer today is never a spike
    reciprocity_min: int = 3  # approvals each way before a pair is reciprocal
    never_rejects_min: int = 30  # decisions in the window before "never rejects" means much
    new_client_min_baseline: int = 3  # decisions with a known place before a new one stands out

    @classmethod
    def from_settings(cls) -> Thresholds:
        """SIGNOFF_ANOMALY_<NAME> overrides each default (read now, never at import time)."""
        return cls(
            **{
                name: getattr(settings, f"SIGNOFF_ANOMALY_{name.upper()}", default)
                for name, default in cls().__dict__.items()
            }
        )


@dataclass(frozen=True)
class Window:
    """Baseline [baseline_start, evaluation_start), then evaluation [evaluation_start, end)."""

    baseline_start: datetime
    evaluation_start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, thresholds: Thresholds) -> Window:
        evaluation_start = end - timedelta(hours=thresholds.evaluation_hours)
        baseline_start = evaluation_start - timedelta(days=thresholds.baseline_days)
        return cls(baseline_start, evaluation_start, end)


@dataclass
class Finding:
    """One anomaly found, before it is stored as an alert."""

    kind: str
    fingerprint: str
    summary: str
    severity: str
    window_start: datetime
    window_end: datetime
    evidence: dict = field(default_factory=dict)
    person: User | None = None
    counterpart: User | None = None
    team: Team | None = None


def decisions_between(start: datetime, end: datetime) -> QuerySet[Decision]:
    """Standing decisions made in [start, end) with what evidence rows name."""
    return Decision.objects.filter(created_at__gte=start, created_at__lt=end).select_related(
        "approver",
        "stage",
        "request__release__service",
        "request__release__environment",
        "request__release__change",
    )


def decision_evidence(decision: Decision, **extra) -> dict:
    """One decision as an alert's evidence names it: ids to link to, and what was decided."""
    release = decision.request.release
    return {
        "decision_id": decision.pk,
        "release_id": release.pk,
        "release": f"{release.service.name} {release.version} → {release.environment.name}",
        "approver": decision.approver.username,
        "verdict": decision.verdict,
        "stage": decision.stage.name,
        "at": decision.created_at.isoformat(),
        **extra,
    }


def _month(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m}"


# --- Rubber-stamping ---------------------------------------------------------------------------


def large_change() -> Q:
    """A release worth more than a glance: a high-risk change record or a tier-1 service."""
    return Q(request__release__change__risk=ChangeRecord.Level.HIGH) | Q(
        request__release__service__tier=Service.Tier.TIER_1
    )


def rubber_stamps(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Approvals of large changes given within N seconds of their stage becoming active."""
    approvals = (
        decisions_between(window.evaluation_start, window.end)
        .filter(large_change(), verdict=Decision.Verdict.APPROVE, stage__activated_at__isnull=False)
        .order_by("created_at", "pk")
    )
    findings = []
    for decision in approvals:
        seconds = (decision.created_at - decision.stage.activated_at).total_seconds()
        if seconds > thresholds.rubber_stamp_seconds:
            continue
        release = decision.request.release
        findings.append(
            Finding(
                kind="rubber_stamp",
                fingerprint=f"rubber_stamp:user:{decision.approver_id}:decision:{decision.pk}",
                summary=(
                    f"{decision.approver.username} approved {release.service.name} "
                    f"{release.version} {seconds:.0f} s after the stage opened "
                    f"({_why_large(release)})."
                ),
                severity="high",
                window_start=decision.stage.activated_at,
                window_end=decision.created_at,
                evidence={
                    "decisions": [decision_evidence(decision, seconds=round(seconds, 1))],
                    "threshold_seconds": thresholds.rubber_stamp_seconds,
                },
                person=decision.approver,
            )
        )
    return findings


def _why_large(release) -> str:
    reasons = []
    if release.change.risk == ChangeRecord.Level.HIGH:
        reasons.append(f"high-risk change {release.change.ref}")
    if release.service.tier == Service.Tier.TIER_1:
        reasons.append("tier-1 service")
    return ", ".join(reasons)


# --- Off-hours ---------------------------------------------------------------------------------


def usual_hours(hours: Iterable[int], coverage: float) -> set[int]:
    """The fewest hours of the day that hold `coverage` of `hours`, most frequent first."""
    counts = Counter(hours)
    total = sum(counts.values())
    covered: set[int] = set()
    held = 0
    # Ties broken by hour so the same history always gives the same set.
    for hour, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if held >= coverage * total:
            break
        covered.add(hour)
        held += count
    return covered


def hours_away(hour: int, usual: set[int]) -> int:
    """How many hours `hour` lies from the nearest usual hour, round the clock."""
    return min(min((hour - h) % 24, (h - hour) % 24) for h in usual)


def off_hours(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Approvals at an hour (in the person's time zone) far outside their own usual hours."""
    approvals = list(
        decisions_between(window.evaluation_start, window.end)
        .filter(verdict=Decision.Verdict.APPROVE)
        .order_by("created_at", "pk")
    )
    history = _decision_times({d.approver_id for d in approvals}, window)
    findings = []
    for decision in approvals:
        person = decision.approver
        zone = ZoneInfo(person.time_zone or "UTC")
        past = [moment.astimezone(zone).hour for moment in history[person.pk]]
        if len(past) < thresholds.off_hours_min_decisions:
            continue  # too little history to know what is usual
        usual = usual_hours(past, thresholds.off_hours_coverage_percent / 100)
        local = decision.created_at.astimezone(zone)
        if hours_away(local.hour, usual) < thresholds.off_hours_margin:
            continue
        findings.append(_off_hours_finding(decision, local, usual, len(past), window))
    return findings


def _decision_times(approver_ids: set[int], window: Window) -> dict[int, list[datetime]]:
    """Each person's decision times in the baseline window, in one query."""
    rows = Decision.objects.filter(
        approver_id__in=approver_ids,
        created_at__gte=window.baseline_start,
        created_at__lt=window.evaluation_start,
    ).values_list("approver_id", "created_at")
    times: dict[int, list[datetime]] = defaultdict(list)
    for approver_id, moment in rows:
        times[approver_id].append(moment)
    return times


def _off_hours_finding(
    decision: Decision, local: datetime, usual: set[int], baseline: int, window: Window
) -> Finding:
    person = decision.approver
    release = decision.request.release
    return Finding(
        kind="off_hours",
        fingerprint=f"off_hours:user:{person.pk}:decision:{decision.pk}",
        summary=(
            f"{person.username} approved {release.service.name} {release.version} at "
            f"{local:%H:%M} ({local.tzname()}), outside their usual "
            f"hours ({hours_label(usual)})."
        ),
        severity="medium",
        window_start=window.baseline_start,
        window_end=decision.created_at,
        evidence={
            "decisions": [decision_evidence(decision, local_time=local.isoformat())],
            "usual_hours": sorted(usual),
            "time_zone": person.time_zone,
            "baseline_decisions": baseline,
        },
        person=person,
    )


def hours_label(usual: set[int]) -> str:
    """Usual hours as ranges people read: {8, 9, 10, 14} → "08:00-11:00, 14:00-15:00"."""
    ranges: list[list[int]] = []
    for hour in sorted(usual):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + 1
        else:
            ranges.append([hour, hour + 1])
    return ", ".join(f"{start:02d}:00-{end:02d}:00" for start, end in ranges)


# --- Volume spikes -----------------------------------------------------------------------------


def volume_spikes(window: Window, thresholds: Thresholds) -> list[Finding]:
    """People and teams whose decisions today exceed the mean + k sd of their daily counts
    (on the same kind of day: weekdays, or weekends)."""
    today = window.end.astimezone(UTC).date()
    start = datetime.combine(today, datetime.min.time(), UTC)
    baseline_start = start - timedelta(days=thresholds.baseline_days)
    days = thresholds.baseline_days
    rows = Decision.objects.filter(created_at__gte=baseline_start, created_at__lt=window.end)
    people = _spikes(_daily(rows, "approver"), today, days, thresholds)
    teams = _spikes(_daily(rows, "approver__teams"), today, days, thresholds)
    users = User.objects.in_bulk([pk for pk, _ in people])
    found_teams = Team.objects.in_bulk([pk for pk, _ in teams])
    period = (baseline_start, window.end, today)
    findings = [
        _spike_finding(period, count, stats, person=users[pk]) for pk, (count, stats) in people
    ]
    findings += [
        _spike_finding(period, count, stats, team=found_teams[pk]) for pk, (count, stats) in teams
    ]
    return findings


def _daily(rows: QuerySet[Decision], by: str) -> dict[int, Counter]:
    """Decisions per subject (person or team) per UTC day."""
    counts: dict[int, Counter] = defaultdict(Counter)
    grouped = (
        rows.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values(by, "day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in grouped:
        if row[by] is not None:
            counts[row[by]][row["day"]] = row["n"]
    return counts


def _spikes(
    counts: dict[int, Counter], today: date, days: int, thresholds: Thresholds
) -> list[tuple[int, tuple[int, dict]]]:
    """Subjects whose count today is above their limit, with the numbers that show it."""
    spikes = []
    for subject, per_day in sorted(counts.items()):
        count = per_day.get(today, 0)
        active_days = sum(1 for day, n in per_day.items() if n and day != today)
        if count < thresholds.volume_min_decisions or active_days < thresholds.volume_min_days:
            continue
        # Quiet days count as zeros, and a weekday is compared with weekdays only (a weekend
        # with weekends): most people do not decide on Saturdays, and those zeros would widen
        # the spread until no weekday could stand out.
        history = [
            per_day.get(day, 0)
            for day in (today - timedelta(days=offset) for offset in range(1, days + 1))
            if (day.weekday() < 5) == (today.weekday() < 5)
        ]
        mean = statistics.fmean(history)
        # Counts vary by about their square root even when nothing changes (Poisson): a floor
        # on the spread keeps a perfectly steady history from flagging one extra decision.
        spread = max(statistics.pstdev(history), math.sqrt(mean))
        limit = mean + thresholds.volume_sigmas * spread
        if count > limit:
            stats = {"today": count, "mean": round(mean, 2), "sd": round(spread, 2)}
            spikes.append((subject, (count, {**stats, "limit": round(limit, 2)})))
    return spikes


def _spike_finding(period: tuple, count: int, stats: dict, **subject) -> Finding:
    baseline_start, end, today = period
    person, team = subject.get("person"), subject.get("team")
    rows = decisions_between(datetime.combine(today, datetime.min.time(), UTC), end)
    if person is not None:
        name, key, rows = person.username, f"user:{person.pk}", rows.filter(approver=person)
    else:
        name, key = f"Team {team.name}", f"team:{team.pk}"
        rows = rows.filter(approver__teams=team)
    return Finding(
        kind="volume_spike",
        fingerprint=f"volume_spike:{key}:{today.isoformat()}",
        summary=(
            f"{name} made {count} decisions on {today:%-d %b %Y}; usually "
            f"{stats['mean']:.1f} a day (limit {stats['limit']:.1f})."
        ),
        severity="medium",
        window_start=baseline_start,
        window_end=end,
        evidence={"decisions": [decision_evidence(d) for d in rows.order_by("created_at")]} | stats,
        **subject,
    )


# --- Reciprocity -------------------------------------------------------------------------------


def reciprocity(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Two people who each approved the other's releases at least k times in the window."""
    approvals = Decision.objects.filter(
        created_at__gte=window.baseline_start,
        created_at__lt=window.end,
        verdict=Decision.Verdict.APPROVE,
    ).annotate(
        # The person behind a release: who triggered the pipeline, else who asked.
        author=Coalesce(F("request__release__triggered_by"), F("request__release__requested_by"))
    )
    pairs = {
        (row["approver"], row["author"]): row["n"]
        for row in approvals.values("approver", "author").annotate(n=Count("pk")).order_by()
    }
    findings = []
    for (first, second), count in sorted(pairs.items()):
        back = pairs.get((second, first), 0)
        if first < second and min(count, back) >= thresholds.reciprocity_min:
            findings.append(_reciprocity_finding(approvals, first, second, window))
    return findings


def _reciprocity_finding(approvals: QuerySet, first: int, second: int, window: Window) -> Finding:
    people = User.objects.in_bulk([first, second])
    a, b = people[first], people[second]
    both = approvals.filter(
        Q(approver_id=first, author=second) | Q(approver_id=second, author=first)
    ).select_related(
        "approver",
        "stage",
        "request__release__service",
        "request__release__environment",
    )
    decisions = [decision_evidence(d) for d in both.order_by("created_at", "pk")]
    a_for_b = sum(1 for d in decisions if d["approver"] == a.username)
    return Finding(
        kind="reciprocity",
        fingerprint=f"reciprocity:users:{first}-{second}:{_month(window.end)}",
        summary=(
            f"{a.username} approved {a_for_b} of {b.username}'s releases and {b.username} "
            f"approved {len(decisions) - a_for_b} of {a.username}'s."
        ),
        severity="high",
        window_start=window.baseline_start,
        window_end=window.end,
        evidence={"decisions": decisions},
        person=a,
        counterpart=b,
    )


# --- Approvers who never reject ------------------------------------------------------------------

NEVER_REJECTS_SHOWN = 50  # the latest decisions named in the evidence; the count covers them all


def never_rejects(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Approvers with many decisions in the window and not one rejection."""
    rows = Decision.objects.filter(created_at__gte=window.baseline_start, created_at__lt=window.end)
    counts = (
        rows.values("approver")
        .annotate(
            total=Count("pk"), rejected=Count("pk", filter=Q(verdict=Decision.Verdict.REJECT))
        )
        .filter(total__gte=thresholds.never_rejects_min, rejected=0)
        .order_by("approver")
    )
    totals = {row["approver"]: row["total"] for row in counts}
    people = User.objects.in_bulk(list(totals))
    findings = []
    for pk, total in totals.items():
        latest = rows.filter(approver_id=pk).select_related(
            "approver", "stage", "request__release__service", "request__release__environment"
        )
        shown = latest.order_by("-created_at", "-pk")[:NEVER_REJECTS_SHOWN]
        findings.append(
            Finding(
                kind="never_rejects",
                fingerprint=f"never_rejects:user:{pk}:{_month(window.end)}",
                summary=(
                    f"{people[pk].username} approved all {total} decisions in "
                    f"{math.ceil((window.end - window.baseline_start).days)} days."
                ),
                severity="low",
                window_start=window.baseline_start,
                window_end=window.end,
                evidence={"decisions": [decision_evidence(d) for d in shown], "total": total},
                person=people[pk],
            )
        )
    return findings


# --- Step-up decisions from a new device or address ----------------------------------------------


def new_clients(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Step-up decisions from an address or device the person has not used in the baseline."""
    step_ups = list(
        decisions_between(window.evaluation_start, window.end)
        .exclude(step_up_method="")
        .order_by("created_at", "pk")
    )
    seen = _clients_seen({d.approver_id for d in step_ups}, window)
    findings = []
    for decision in step_ups:
        addresses, devices, baseline = seen[decision.approver_id]
        if baseline < thresholds.new_client_min_baseline:
            continue  # a newcomer: every place is new
        new = {}
        if decision.client_address and decision.client_address not in addresses:
            new["address"] = decision.client_address
        if decision.client_device and decision.client_device not in devices:
            new["device"] = decision.client_device
        if new:
            findings.append(_new_client_finding(decision, new, window))
    return findings


def _clients_seen(
    approver_ids: set[int], window: Window
) -> dict[int, tuple[set[str], set[str], int]]:
    """Each person's addresses and devices of the baseline window, and how many decisions."""
    rows = Decision.all_objects.filter(
        approver_id__in=approver_ids,
        created_at__gte=window.baseline_start,
        created_at__lt=window.evaluation_start,
    ).values_list("approver_id", "client_address", "client_device")
    seen: dict[int, tuple[set[str], set[str], int]] = defaultdict(lambda: (set(), set(), 0))
    for approver_id, address, device in rows:
        if not (address or device):
            continue  # made before clients were recorded: says nothing about places
        addresses, devices, count = seen[approver_id]
        addresses.add(address)
        devices.add(device)
        seen[approver_id] = (addresses, devices, count + 1)
    return seen


def _new_client_finding(decision: Decision, new: dict, window: Window) -> Finding:
    person = decision.approver
    release = decision.request.release
    what = " and ".join(
        f"a new {name} ({value})" if name == "address" else "a new device"
        for name, value in new.items()
    )
    return Finding(
        kind="new_client",
        fingerprint=f"new_client:user:{person.pk}:decision:{decision.pk}",
        summary=(
            f"{person.username} decided step-up stage {decision.stage.name} of "
            f"{release.service.name} {release.version} from {what}."
        ),
        severity="high",
        window_start=window.baseline_start,
        window_end=decision.created_at,
        evidence={
            "decisions": [
                decision_evidence(
                    decision,
                    address=decision.client_address,
                    device=decision.client_device,
                    step_up=decision.step_up_method,
                )
            ],
            "new": sorted(new),
        },
        person=person,
    )


DETECTORS = (rubber_stamps, off_hours, volume_spikes, reciprocity, never_rejects, new_clients)


def detect(window: Window, thresholds: Thresholds) -> list[Finding]:
    """Every detector's findings for `window`, in a stable order."""
    return [finding for detector in DETECTORS for finding in detector(window, thresholds)]
