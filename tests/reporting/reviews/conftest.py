"""A quarter of history (2026 Q3) with one act of each kind, plus acts just outside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from approvals import services
from approvals.emergencies.models import EmergencyException
from approvals.models import Deployment
from changes.freezes.models import FreezeOverride
from changes.freezes.services import FreezeInput, create_freeze
from changes.models import ChangeRecord
from changes.reviews.models import Review
from governance.models import Role
from tests import factories

# The review of 2026 Q3 starts on the next quarter's first day.
REVIEW_DAY = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


def at(day: str, clock: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


@pytest.fixture
def security_approver(db):
    user = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


@pytest.fixture
def second_administrator(db):
    """Confirms what ada asks for: an override needs a second administrator."""
    user = factories.UserFactory(username="root", first_name="Root")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


@pytest.fixture
def release_manager(requester):
    """The release manager persona: dave, who requests payments and web releases."""
    return requester


def _emergency(service, declared_by, starts_at, ref) -> EmergencyException:
    change = ChangeRecord.objects.create(
        ref=ref, type="emergency", title="Hotfix", author=declared_by
    )
    return EmergencyException.objects.create(
        change=change,
        service=service,
        declared_by=declared_by,
        justification="Card payments failing.",
        outage="500s on /pay.",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=4),
    )


def _post_mortem(emergency, due_at, completed_at=None) -> Review:
    return Review.objects.create(
        kind=Review.Kind.POST_MORTEM,
        trigger=Review.Trigger.EMERGENCY,
        change=emergency.change,
        service=emergency.service,
        summary="Post-mortem of the emergency",
        due_at=due_at,
        status=Review.Status.COMPLETED if completed_at else Review.Status.OPEN,
        completed_at=completed_at,
    )


@pytest.fixture
def quarter(
    org,
    service,
    low_tier_service,
    production,
    requester,
    approver,
    administrator,
    pipeline_bot,
    second_administrator,
):
    """2026 Q3 as rows: per kind, what the review must list and what it must leave out.

    Listed: one confirmed freeze override (asked by ada, confirmed by root, for dave's release);
    two emergencies (dave's on payments-api, alice's on web-frontend); two late post-mortems
    (one completed two days late, one still open); one release deployed twice unapproved in
    the quarter. Left out: an unconfirmed override, an emergency of Q2, a post-mortem completed
    on time, one due in Q4, and an approved deployment.
    """
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    freeze = create_freeze(
        data=FreezeInput(
            name="Quarter close",
            kind="hard",
            time_zone="UTC",
            local_start=datetime(2026, 9, 28, 0, 0),
            local_end=datetime(2026, 10, 2, 0, 0),
            environments=[production],
            reason="Books close",
        ),
        actor=administrator,
    )
    override = dict(
        freeze=freeze,
        release_id=release.pk,
        release_label=str(release),
        reason="Fix for the close itself",
        requested_by=administrator,
        expires_at=at("2026-10-02"),
    )
    listed_override = FreezeOverride.objects.create(
        **override,
        requested_at=at("2026-09-29"),
        confirmed_by=second_administrator,
        confirmed_at=at("2026-09-29", "13:00"),
    )
    FreezeOverride.objects.create(**override, requested_at=at("2026-09-30"))
    payments = _emergency(service, requester, at("2026-07-14"), "CHG-E1")
    web = _emergency(low_tier_service, approver, at("2026-08-20"), "CHG-E2")
    spring = _emergency(service, requester, at("2026-06-30", "23:00"), "CHG-E0")
    late = _post_mortem(payments, at("2026-07-21"), completed_at=at("2026-07-23"))
    still_open = _post_mortem(web, at("2026-08-27"))
    _post_mortem(spring, at("2026-07-07"), completed_at=at("2026-07-06"))
    q4 = _emergency(low_tier_service, approver, at("2026-10-01", "02:00"), "CHG-E3")
    _post_mortem(q4, at("2026-10-06"))
    # The second unapproved deployment was reported by a person, by hand: their act too.
    for when, approved, reporter in (
        (at("2026-08-01"), False, pipeline_bot),
        (at("2026-08-02"), False, approver),
        (at("2026-08-03"), True, pipeline_bot),
        (at("2026-10-01", "01:00"), False, pipeline_bot),
    ):
        Deployment.objects.create(
            release=release,
            status="succeeded",
            reported_by=reporter,
            digest=release.digest,
            approved=approved,
            created_at=when,
        )
    return {
        "release": release,
        "override": listed_override,
        "emergencies": [payments, web],
        "post_mortems": [late, still_open],
    }
