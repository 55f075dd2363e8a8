"""Freeze fixtures: a second administrator, a release manager who is not the requester, and a
helper creating freezes through the real service in wall time around now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from changes.freezes.services import FreezeInput, create_freeze
from governance.models import Role
from tests import factories


@pytest.fixture
def second_administrator(db):
    user = factories.UserFactory(username="gus", first_name="Gus")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


@pytest.fixture
def release_manager(service):
    """Release manager of payments-api who did not request the release (dave did)."""
    user = factories.UserFactory(username="rita", first_name="Rita")
    factories.grant(user, Role.RELEASE_MANAGER, service)
    return user


@pytest.fixture
def make_freeze(administrator, production):
    """`make_freeze(hours_before=1, hours_after=2, **fields)`: a freeze around now (UTC wall)."""

    def make(hours_before: float = 1, hours_after: float = 2, **fields):
        actor = fields.pop("actor", administrator)
        now = timezone.now().replace(microsecond=0, tzinfo=None)  # UTC wall time
        values = {
            "name": "Release freeze",
            "kind": "hard",
            "time_zone": "UTC",
            "local_start": now - timedelta(hours=hours_before),
            "local_end": now + timedelta(hours=hours_after),
            "environments": [production],
            "reason": "Quarter close",
        }
        values.update(fields)
        return create_freeze(data=FreezeInput(**values), actor=actor)

    return make
