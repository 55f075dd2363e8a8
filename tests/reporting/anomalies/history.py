"""Decision histories written as rows, with exact times: what the detectors read.

Deciding through the workflow is tested with the approvals app; here each past decision is
its own release, request, stage and decision, written in a few bulk inserts so a 90-day history
of several people stays quick to build.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from approvals.models import ApprovalRequest, ApprovalStage, Decision, Release
from changes.models import ChangeRecord
from governance.models import Environment, Service, User
from tests import factories

# A Tuesday afternoon (UTC): the last day is Monday 15:00 to now, "today" is Tuesday.
NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
_numbers = itertools.count(1)


@dataclass
class Past:
    """One past decision to write."""

    approver: User
    at: datetime
    author: User
    service: Service
    environment: Environment
    verdict: str = "approve"
    risk: str = "moderate"
    opened_before: timedelta = timedelta(minutes=45)
    step_up: str = ""
    address: str | None = None
    device: str = ""


@dataclass
class History:
    """Decisions to write at once with `save()`, which returns them in the order added."""

    rows: list[Past] = field(default_factory=list)
    # Looked up once per history: thousands of rows share a handful of them.
    known: dict = field(default_factory=dict)

    def add(self, approver: User, at: datetime, *, large: bool = False, **details) -> Past:
        """A decision by `approver` at `at`; `large` puts it on a tier-1 service in production."""
        details.setdefault("author", self._once("author", _author))
        details.setdefault(
            "service", self._once(f"service{large}", tier_one if large else routine_service)
        )
        slug = "production" if large else "staging"
        details.setdefault("environment", self._once(slug, lambda: factories.environment(slug)))
        row = Past(approver=approver, at=at, **details)
        self.rows.append(row)
        return row

    def _once(self, key: str, make):
        if key not in self.known:
            self.known[key] = make()
        return self.known[key]

    def save(self) -> list[Decision]:
        changes = ChangeRecord.objects.bulk_create(
            [
                ChangeRecord(ref=f"CHG9{next(_numbers):06d}", title="Routine change", risk=r.risk)
                for r in self.rows
            ]
        )
        releases = Release.objects.bulk_create(
            [
                Release(
                    service=r.service,
                    environment=r.environment,
                    version=f"1.{n}.0",
                    image=f"registry.example.com/{r.service.slug}",
                    digest=factories.digest(),
                    change=change,
                    requested_by=r.author,
                    triggered_by=r.author,
                    created_at=r.at - r.opened_before,
                )
                for n, (r, change) in enumerate(zip(self.rows, changes, strict=True))
            ]
        )
        requests = ApprovalRequest.objects.bulk_create(
            [
                ApprovalRequest(
                    release=release,
                    status="approved" if r.verdict == "approve" else "rejected",
                    requested_at=r.at - r.opened_before,
                    expires_at=r.at + timedelta(days=7),
                    decided_at=r.at,
                )
                for r, release in zip(self.rows, releases, strict=True)
            ]
        )
        stages = ApprovalStage.objects.bulk_create(
            [
                ApprovalStage(
                    request=request,
                    position=0,
                    key="service",
                    name="Service approval",
                    approvers="service_approvers",
                    step_up=bool(r.step_up),
                    status="approved" if r.verdict == "approve" else "rejected",
                    activated_at=r.at - r.opened_before,
                    completed_at=r.at,
                )
                for r, request in zip(self.rows, requests, strict=True)
            ]
        )
        return Decision.objects.bulk_create(
            [
                Decision(
                    request=request,
                    stage=stage,
                    approver=r.approver,
                    verdict=r.verdict,
                    rationale="Reviewed.",
                    digest=request.release.digest,
                    step_up_method=r.step_up,
                    client_address=r.address,
                    client_device=r.device,
                    created_at=r.at,
                )
                for r, request, stage in zip(self.rows, requests, stages, strict=True)
            ]
        )


def _author() -> User:
    """The requester of routine releases: approves nothing, so no pair of people is reciprocal."""
    return factories.UserFactory(username="rita", first_name="Rita")


def _service(slug: str, tier: int) -> Service:
    team = factories.TeamFactory(slug="payments", name="Payments")
    return factories.ServiceFactory(slug=slug, tier=tier, team=team)


def tier_one() -> Service:
    return _service("payments-api", 1)


def routine_service() -> Service:
    return _service("web-frontend", 3)


def person(username: str, time_zone: str = "Europe/London") -> User:
    return factories.UserFactory(username=username, time_zone=time_zone)


def local(user: User, day: datetime, hour: int, minute: int = 0) -> datetime:
    """`day`'s date at `hour`:`minute` in `user`'s time zone, as an aware UTC time."""
    zone = ZoneInfo(user.time_zone)
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return moment.astimezone(UTC)


def workdays(days: int = 90, before: datetime = NOW) -> list[datetime]:
    """The weekdays of the `days` days up to and including `before`'s own date, oldest first."""
    dates = [before - timedelta(days=offset) for offset in range(days, -1, -1)]
    return [d for d in dates if d.weekday() < 5]


@dataclass(frozen=True)
class Device:
    """Where a person usually decides from: one address and one browser."""

    address: str
    device: str


def routine(history: History, approver: User, usual: Device, *, days: int = 90) -> None:
    """A realistic working pattern: two decisions a weekday at varied hours between 09:00 and
    17:00 in the person's own zone, one in seven a rejection, large changes looked at for a
    while, step-up stages from their usual place; nothing after NOW."""
    count = 0
    for index, day in enumerate(workdays(days)):
        for slot in range(2):
            at = local(approver, day, 9 + (index * 3 + slot * 5) % 8, (index * 7) % 60)
            if at >= NOW:
                continue
            count += 1
            large = count % 3 == 0
            history.add(
                approver,
                at,
                verdict="reject" if count % 7 == 0 else "approve",
                large=large,
                opened_before=timedelta(minutes=20 + (count * 13) % 180),
                step_up="totp" if large else "",
                address=usual.address,
                device=usual.device,
            )
