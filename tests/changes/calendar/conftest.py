"""Calendar fixtures: change records with planned windows, freezes, and a feed URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from changes.freezes.services import FreezeInput, create_freeze
from changes.models import ChangeRecord
from governance.identity import feeds
from governance.models import Vendor
from tests import factories

# A Monday in a week with no daylight-saving change in Europe or the US.
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of MONDAY (day 0 is Monday), UTC."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


@pytest.fixture
def make_change(db):
    """`make_change(services, start, end, **fields)`: a change record planned in that window."""
    counter = iter(range(1, 1000))

    def make(services, start, end=None, **fields) -> ChangeRecord:
        number = next(counter)
        values = {
            "ref": f"CHG{number:07d}",
            "title": f"Change {number}",
            "planned_start": start,
            "planned_end": end,
            "state": ChangeRecord.State.SCHEDULED,
        }
        values.update(fields)
        change = ChangeRecord.objects.create(**values)
        change.services.set(services)
        return change

    return make


@pytest.fixture
def make_freeze(administrator, production):
    """`make_freeze(local_start, local_end, **fields)`: a freeze through the real service."""

    def make(local_start, local_end, **fields):
        values = {
            "name": "Quarter close",
            "kind": "hard",
            "time_zone": "UTC",
            "local_start": local_start,
            "local_end": local_end,
            "environments": [production],
            "reason": "Quarter close",
        }
        values.update(fields)
        return create_freeze(data=FreezeInput(**values), actor=administrator)

    return make


@pytest.fixture
def feed_url_of():
    """`feed_url_of(user)`: the path and query of the person's feed, issuing their key."""

    def make(user) -> str:
        key = feeds.feed_key(user) or feeds.issue_feed_key(user=user, actor=None)
        parts = urlsplit(feeds.feed_url(key))
        return f"{parts.path}?{parts.query}"

    return make


@pytest.fixture
def vendor_service(team):
    vendor = Vendor.objects.create(name="Acme Cloud", slug="acme")
    return factories.ServiceFactory(slug="acme-crm", tier=3, team=team, vendor=vendor)
