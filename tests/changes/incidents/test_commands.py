"""`configure_integration` and `map_external`: ledgered, and secrets are shown masked."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from changes.incidents.models import ExternalServiceMapping, IntegrationConfig
from governance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db
OLD, NEW = "old-secret-aaaaaaaa1111", "new-secret-bbbbbbbb2222"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_two_secrets_while_rotating_are_stored_and_shown_masked(db):
    output = run("configure_integration", "pagerduty", "--secret", OLD, "--secret", NEW)

    assert output == "PagerDuty: 2 signing secret(s) (…1111, …2222).\n"
    assert IntegrationConfig.objects.get(source="pagerduty").secrets == [OLD, NEW]
    entry = LedgerEntry.objects.get(kind="integration.configured")
    assert entry.payload == {"source": "pagerduty", "secrets": ["…1111", "…2222"], "before": []}
    assert OLD not in str(entry.payload) and NEW not in str(entry.payload)


def test_a_short_secret_is_refused_and_nothing_is_written(db):
    with pytest.raises(CommandError, match="at least 16 characters"):
        run("configure_integration", "pagerduty", "--secret", "short")

    assert (IntegrationConfig.objects.count(), LedgerEntry.objects.count()) == (0, 0)


def test_mapping_a_pagerduty_service_is_ledgered_and_can_be_changed(service, other_service):
    assert run("map_external", "pagerduty", "PF9KMXH", "payments-api") == (
        "pagerduty PF9KMXH → payments-api\n"
    )
    run("map_external", "pagerduty", "PF9KMXH", "billing", "--actor", "ada")

    assert ExternalServiceMapping.objects.get().service == other_service
    entries = LedgerEntry.objects.filter(kind="integration.mapped").order_by("seq")
    assert [(e.actor, e.payload["before"], e.payload["service"]) for e in entries] == [
        ("manage.py", None, "payments-api"),
        ("ada", "payments-api", "billing"),
    ]


def test_mapping_to_an_unknown_service_is_refused(db):
    with pytest.raises(CommandError, match="No service 'nope'"):
        run("map_external", "pagerduty", "PF9KMXH", "nope")

    assert LedgerEntry.objects.count() == 0
