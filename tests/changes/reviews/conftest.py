"""Fixtures for reviews: the service's owners, releases approved or not, an emergency change."""

from __future__ import annotations

import pytest

from approvals import services
from approvals.models import Release
from governance.models import User
from tests import factories


@pytest.fixture
def owner(service) -> User:
    """olga owns payments-api: she completes its reviews."""
    user = factories.UserFactory(username="olga", first_name="Olga")
    service.owners.add(user)
    return user


@pytest.fixture
def approved_release(production_release, approver, second_approver, cab_member) -> Release:
    """dave's production release with every stage approved: the gate says approved."""
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)
    return Release.objects.get(pk=production_release.pk)


@pytest.fixture
def deploy(pipeline_bot):
    """`deploy(release, status)` reports a deployment outcome as the pipeline does."""

    def report(release: Release, status: str = "succeeded"):
        return services.record_deployment(release=release, actor=pipeline_bot, status=status)

    return report


@pytest.fixture
def emergency_release(org, low_tier_service, dev, pipeline_bot) -> Release:
    """An emergency change declared by dave, released to dev (web-frontend)."""
    release, _ = services.request_approval(
        data=factories.release_input(
            low_tier_service, dev, triggered_by="dave", change_type="emergency"
        ),
        actor=pipeline_bot,
    )
    return release


@pytest.fixture
def declared(emergency_release):
    """dave's emergency exception, in force from an hour ago for four hours: the gate lets the
    emergency release through (written as a row: declaring is the emergency path's own test)."""
    from datetime import timedelta

    from django.utils import timezone

    from approvals.emergencies.models import EmergencyException

    now = timezone.now()
    return EmergencyException.objects.create(
        change=emergency_release.change,
        service=emergency_release.service,
        declared_by=emergency_release.change.author,
        justification="Checkout is down for every customer.",
        outage="Checkout returns 500s.",
        controls=["extra_monitoring"],
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
    )


@pytest.fixture
def web_owner(low_tier_service) -> User:
    """wanda owns web-frontend, where the emergency happened."""
    user = factories.UserFactory(username="wanda", first_name="Wanda")
    low_tier_service.owners.add(user)
    return user


@pytest.fixture
def failed_review(approved_release, deploy, owner):
    """The open post-implementation review of the approved release's failed deployment."""
    from changes.reviews.models import Review

    deploy(approved_release, "failed")
    return Review.objects.select_related("change", "service").get(trigger="deployment_failed")


@pytest.fixture
def post_mortem(emergency_release, declared, deploy, web_owner):
    """The open post-mortem of dave's deployed emergency change."""
    from changes.reviews.models import Review

    deploy(emergency_release, "succeeded")
    return Review.objects.select_related("change", "service").get(kind="post_mortem")
