"""The demo's freezes: a weekend freeze on production and an end-of-quarter one for the web
services, loaded idempotently, and never holding payments (the README's walkthrough)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from django.core.management import call_command

from changes.models import Freeze
from governance.models import Environment, Service


def test_the_demo_freezes_are_idempotent_and_never_hold_payments(db):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())

    assert sorted(Freeze.objects.values_list("name", "kind")) == [
        ("End-of-quarter freeze", "soft"),
        ("Weekend freeze", "hard"),
    ]
    environments = list(Environment.objects.all())
    for slug in ("payments-api", "payments-ledger"):
        service = Service.objects.get(slug=slug)
        for environment in environments:
            assert not Freeze.objects.covering(service.pk, environment.pk).exists()
    checkout = Service.objects.get(slug="checkout-service")
    production = Environment.objects.get(slug="production")
    assert Freeze.objects.covering(checkout.pk, production.pk).count() == 2


def test_the_weekend_freeze_covers_saturdays_in_london_winter_and_summer(db):
    call_command("seed_demo", stdout=io.StringIO())
    weekend = Freeze.objects.get(name="Weekend freeze")

    assert weekend.occurrence_at(datetime(2027, 1, 9, 12, tzinfo=UTC)) == (
        datetime(2027, 1, 8, 18, tzinfo=UTC),
        datetime(2027, 1, 11, 6, tzinfo=UTC),
    )
    # British Summer Time: Friday 18:00 in London is 17:00 UTC.
    assert weekend.occurrence_at(datetime(2027, 7, 10, 12, tzinfo=UTC)) == (
        datetime(2027, 7, 9, 17, tzinfo=UTC),
        datetime(2027, 7, 12, 5, tzinfo=UTC),
    )
    assert weekend.occurrence_at(datetime(2027, 7, 7, 12, tzinfo=UTC)) is None


def test_the_quarter_freeze_is_the_last_week_of_each_quarter(db):
    call_command("seed_demo", stdout=io.StringIO())
    quarter = Freeze.objects.get(name="End-of-quarter freeze")

    starts = [
        s
        for s, _ in quarter.occurrences_between(
            datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
        )
    ]

    # Midnight in New York (UTC-4 in summer, UTC-5 in winter), 7 days before each quarter ends;
    # the first is the end of 2026's last quarter, which runs into 2027.
    assert starts == [
        datetime(2026, 12, 25, 5, tzinfo=UTC),
        datetime(2027, 3, 25, 4, tzinfo=UTC),
        datetime(2027, 6, 24, 4, tzinfo=UTC),
        datetime(2027, 9, 24, 4, tzinfo=UTC),
        datetime(2027, 12, 25, 5, tzinfo=UTC),
    ]
    assert timedelta(days=7) == quarter.wall_duration
