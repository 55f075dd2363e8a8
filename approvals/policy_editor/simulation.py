"""What a draft policy would have changed: past releases planned with the draft and with the
published version, release by release, and which differences loosen control.

A loosening is a difference that lets a release to a regulated environment through with less:
a stage gone, fewer approvals, no dual control or step-up, an evidence requirement dropped or
relaxed, a longer approval validity, a required check dropped, or a blocked release unblocked.
Such a change always goes to a second administrator, who must confirm it explicitly.

Each release's context is built once (`policy_context`) and both documents are evaluated
against it; the releases and what their contexts read are loaded up front.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone

from approvals.context import environment_context, policy_context, service_context
from approvals.models import Evidence, Release
from changes.incidents.selectors import incident_context
from governance.models import Environment, Service
from governance.policy import engine
from governance.policy.engine import Plan
from governance.policy.reference import NO_INCIDENTS, NO_PLAN, SAMPLE_CONTEXT

DEFAULT_DAYS = 30
MAX_DAYS = 365
# Beyond this many releases the page would take too long; the latest ones are simulated.
MAX_RELEASES = 2_000


@dataclass
class Difference:
    text: str
    direction: str = ""  # "tighter", "looser" or "" (neither, e.g. other approvers)


@dataclass
class ReleaseChange:
    """One release whose plan the draft changes."""

    release: Release
    differences: list[Difference]

    @property
    def regulated(self) -> bool:
        return self.release.environment.regulated

    @property
    def tightened(self) -> bool:
        return any(d.direction == "tighter" for d in self.differences)

    @property
    def loosened(self) -> bool:
        return any(d.direction == "looser" for d in self.differences)

    @property
    def loosening(self) -> list[str]:
        """What loosens control on a regulated environment (empty elsewhere)."""
        if not self.regulated:
            return []
        return [d.text for d in self.differences if d.direction == "looser"]

    @property
    def newly_blocked(self) -> bool:
        return any(d.text.startswith(NOW_BLOCKED) for d in self.differences)


@dataclass
class Simulation:
    days: int
    simulated: int
    capped: bool  # more releases matched than MAX_RELEASES
    changes: list[ReleaseChange] = field(default_factory=list)
    # Loosening found on the catalogue's services and regulated environments, whether or not
    # a release went there in the window (a quiet environment is loosened all the same).
    catalogue: list[str] = field(default_factory=list)

    @property
    def tightened(self) -> int:
        return sum(c.tightened for c in self.changes)

    @property
    def loosened(self) -> int:
        return sum(c.loosened for c in self.changes)

    @property
    def newly_blocked(self) -> int:
        return sum(c.newly_blocked for c in self.changes)

    def loosening(self) -> list[str]:
        """The loosening on regulated environments, one line per environment and difference,
        with how many releases it touches: what the second administrator confirms."""
        counts: Counter[tuple[str, str]] = Counter()
        for change in self.changes:
            for text in change.loosening:
                counts[(change.release.environment.name, text)] += 1
        found = [
            f"{environment}: {text} ({count} release{'s' if count != 1 else ''})"
            for (environment, text), count in sorted(counts.items())
        ]
        return found + self.catalogue


NOW_BLOCKED = "now blocked"
NO_LONGER_BLOCKED = "no longer blocked"


def simulate(
    *, draft: str, published: str, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> Simulation:
    """Plan the releases requested in the last `days` days with both documents; both must
    parse (PolicyError otherwise). Only releases whose plan would change are listed."""
    engine.parse(draft)
    engine.parse(published)
    releases = recent_releases(days, now)
    capped = len(releases) > MAX_RELEASES
    releases = releases[:MAX_RELEASES]
    simulation = Simulation(days, len(releases), capped)
    incidents: dict[int, dict] = {}  # the same for every release of a service
    for release in releases:
        if release.service_id not in incidents:
            incidents[release.service_id] = incident_context(release.service_id)
        # One context, both documents: the only difference between the plans is the policy.
        context = policy_context(
            release, list(release.evidence.all()), incidents[release.service_id]
        )
        differences = compare(engine.evaluate(published, context), engine.evaluate(draft, context))
        if differences:
            simulation.changes.append(ReleaseChange(release, differences))
    found = {(c.release.environment.name, c.release.service.slug) for c in simulation.changes}
    simulation.catalogue = [
        line
        for (environment, service), line in catalogue_loosening(draft=draft, published=published)
        if (environment, service) not in found
    ]
    return simulation


CHANGE_TYPES = ("normal", "standard", "emergency")


def catalogue_loosening(*, draft: str, published: str) -> list[tuple[tuple[str, str], str]]:
    """Every service of the catalogue, to every regulated environment, for each change type,
    planned with both documents from what the catalogue says (no evidence, no incidents, no
    Terraform plan): ((environment, service), line) for each loosening found."""
    found = []
    environments = list(Environment.objects.filter(regulated=True).prefetch_related("targets"))
    services = Service.objects.select_related("team", "vendor").prefetch_related("co_owning_teams")
    for service in services:
        for environment in environments:
            looser: dict[str, list[str]] = {}
            for change_type in CHANGE_TYPES:
                context = catalogue_context(service, environment, change_type)
                for difference in compare(
                    engine.evaluate(published, context), engine.evaluate(draft, context)
                ):
                    if difference.direction == "looser":
                        looser.setdefault(difference.text, []).append(change_type)
            for text, types in looser.items():
                found.append(
                    (
                        (environment.name, service.slug),
                        f"{environment.name}, {service.slug} ({', '.join(types)} changes): {text}",
                    )
                )
    return found


def catalogue_context(service: Service, environment: Environment, change_type: str) -> dict:
    """A release of `service` to `environment` as the catalogue describes it, shaped like
    `policy_context` builds one."""
    context = copy.deepcopy(SAMPLE_CONTEXT)
    context["release"].update(version="", standard_change="")
    context["service"] = service_context(service)
    context["environment"] = environment_context(environment)
    context["change"].update(type=change_type, ref="")
    context["evidence"] = {}
    context["incidents"] = copy.deepcopy(NO_INCIDENTS)
    context["plan"] = dict(NO_PLAN)
    return context


def recent_releases(days: int, now: datetime | None = None) -> list[Release]:
    """The latest MAX_RELEASES + 1 releases of the window (one more tells whether it capped),
    with everything `policy_context` reads loaded in a fixed number of queries."""
    since = (now or timezone.now()) - timedelta(days=days)
    evidence = Evidence.objects.order_by("created_at", "pk")
    return list(
        Release.objects.filter(created_at__gte=since)
        .select_related(
            "service__team", "service__vendor", "environment", "change", "infrastructure_plan"
        )
        .prefetch_related(
            Prefetch("evidence", queryset=evidence),
            "service__co_owning_teams",
            "environment__targets",
        )
        .order_by("-created_at", "-pk")[: MAX_RELEASES + 1]
    )


# --- comparing two plans ------------------------------------------------------------------


def compare(before: Plan, after: Plan) -> list[Difference]:
    """How `after` (the draft's plan) differs from `before` (the published one's)."""
    was_blocked, is_blocked = _blocked(before), _blocked(after)
    if was_blocked != is_blocked:
        if is_blocked:
            return [Difference(f"{NOW_BLOCKED}: {_reasons(after)}", "tighter")]
        return [Difference(f"{NO_LONGER_BLOCKED} (was: {_reasons(before)})", "looser")]
    differences = _stage_differences(before, after)
    differences += _evidence_differences(before, after)
    differences += _control_differences(before, after)
    return differences


def _reasons(plan: Plan) -> str:
    return "; ".join([*plan.errors, *(getattr(plan, "blocks", None) or [])])


def _blocked(plan: Plan) -> bool:
    # `blocks`: reasons a policy itself gives to refuse a release (newer plans only).
    return bool(plan.errors or getattr(plan, "blocks", None))


def _stage_differences(before: Plan, after: Plan) -> list[Difference]:
    old = {s.key: s for s in before.stages}
    new = {s.key: s for s in after.stages}
    found = []
    for key in old.keys() - new.keys():
        found.append(Difference(f"removes stage '{old[key].name}'", "looser"))
    for key in new.keys() - old.keys():
        stage = new[key]
        text = f"adds stage '{stage.name}' ({stage.count} of {stage.approvers_label})"
        found.append(Difference(text, "tighter"))
    for key in sorted(old.keys() & new.keys()):
        found += _stage_change(old[key], new[key])
    return sorted(found, key=lambda d: d.text)


def _stage_change(old, new) -> list[Difference]:
    found = []
    name = f"stage '{new.name}'"
    if new.count != old.count:
        direction = "tighter" if new.count > old.count else "looser"
        found.append(Difference(f"{name}: {old.count} → {new.count} approvals", direction))
    if new.approvers != old.approvers:
        text = f"{name}: approvers {old.approvers_label} → {new.approvers_label}"
        found.append(Difference(text))
    if new.teams != old.teams:
        # "" (nothing said) < any < primary < each owning team: the later, the stricter.
        order = ["", *engine.TEAM_RULES]
        stricter = order.index(new.teams) > order.index(old.teams)
        text = f"{name}: owning teams {_teams(old.teams)} → {_teams(new.teams)}"
        found.append(Difference(text, "tighter" if stricter else "looser"))
    if new.step_up != old.step_up:
        text = f"{name}: step-up {'required' if new.step_up else 'no longer required'}"
        found.append(Difference(text, "tighter" if new.step_up else "looser"))
    return found


def _teams(rule: str) -> str:
    return engine.TEAM_RULES.get(rule, "not named")


def _evidence_differences(before: Plan, after: Plan) -> list[Difference]:
    old = {e.kind: e for e in before.evidence}
    new = {e.kind: e for e in after.evidence}
    found = [
        Difference(f"no longer requires {old[kind].describe()}", "looser")
        for kind in sorted(old.keys() - new.keys())
    ]
    found += [
        Difference(f"requires {new[kind].describe()}", "tighter")
        for kind in sorted(new.keys() - old.keys())
    ]
    for kind in sorted(old.keys() & new.keys()):
        found += _threshold_differences(old[kind], new[kind])
    return found


# Thresholds an evidence requirement may set: (words before, words after, a maximum?).
THRESHOLDS = {
    "min_passed": ("at least", " passed", False),
    "max_failed": ("at most", " failed", True),
    "max_skipped": ("at most", " skipped", True),
    "min_coverage": ("coverage of at least", "%", False),
}


def _threshold_differences(old, new) -> list[Difference]:
    """A threshold relaxed (a higher maximum, a lower minimum, or none) is loosening."""
    found = []
    where = f"evidence '{new.kind}'"
    for name, (before, after, maximum) in THRESHOLDS.items():
        was, now = getattr(old, name, None), getattr(new, name, None)
        if was != now:
            text = f"{where}: {before} {_limit(was)}{after} → {_limit(now)}"
            found.append(Difference(text, _direction(was, now, maximum)))
    old_findings = getattr(old, "max_findings", None) or {}
    new_findings = getattr(new, "max_findings", None) or {}
    for severity in sorted(old_findings.keys() | new_findings.keys()):
        was, now = old_findings.get(severity), new_findings.get(severity)
        if was != now:
            text = f"{where}: at most {_limit(was)} {severity} findings → {_limit(now)}"
            found.append(Difference(text, _direction(was, now, True)))
    if getattr(old, "distinct_reviewer", False) != getattr(new, "distinct_reviewer", False):
        kept = getattr(new, "distinct_reviewer", False)
        text = f"{where}: distinct reviewer {'required' if kept else 'no longer required'}"
        found.append(Difference(text, "tighter" if kept else "looser"))
    if old.status != new.status:
        found.append(Difference(f"{where}: status '{old.status}' → '{new.status}'"))
    return found


def _direction(was, now, maximum: bool) -> str:
    """None is no limit at all; a maximum relaxes upwards, a minimum downwards."""
    if now is None:
        return "looser"
    if was is None:
        return "tighter"
    return "looser" if (now > was) == maximum else "tighter"


def _limit(value) -> str:
    if value is None:
        return "any number"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _control_differences(before: Plan, after: Plan) -> list[Difference]:
    found = []
    if before.dual_control != after.dual_control:
        text = "dual control " + ("required" if after.dual_control else "dropped")
        found.append(Difference(text, "tighter" if after.dual_control else "looser"))
    was, now = before.approval_valid_hours, after.approval_valid_hours
    if was != now:
        longer = now is None or (was is not None and now > was)
        text = f"approval valid for {_hours(was)} → {_hours(now)}"
        found.append(Difference(text, "looser" if longer else "tighter"))
    old_checks = set(getattr(before, "checks", None) or {})
    new = set(getattr(after, "checks", None) or {})
    found += [Difference(f"no longer checks {c}", "looser") for c in sorted(old_checks - new)]
    found += [Difference(f"checks {c}", "tighter") for c in sorted(new - old_checks)]
    return found


def _hours(value: int | None) -> str:
    return "no limit" if value is None else f"{value} h"
