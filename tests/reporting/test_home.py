"""The auditor's home: what an organisation-wide and a scoped auditor find there."""

from __future__ import annotations

import pytest

from approvals import services
from governance.authority.models import Role
from governance.ledger import checkpoints
from governance.ledger.models import LedgerVerification
from tests import factories

pytestmark = pytest.mark.django_db

HOME = "/reports/"


def test_an_organisation_wide_auditor_sees_the_ledger_state(client, auditor, production_release):
    outcome = checkpoints.write_checkpoint()
    LedgerVerification.objects.create(
        status=LedgerVerification.Status.FAILED, problem="entry #3: content does not match"
    )
    client.force_login(auditor)
    page = client.get(HOME).content.decode()
    seq = outcome.stored.checkpoint.seq
    assert f'data-testid="ledger-entries">{seq}<' in page
    assert f"entry #{seq}, signed" in page
    assert "entry #3: content does not match" in page
    assert "/reports/ledger.jsonl" in page
    assert "/reports/audit/" in page
    # The release to production is offered as an evidence pack.
    assert f"/reports/releases/{production_release.pk}/evidence.pdf" in page


def test_a_scoped_auditor_sees_their_releases_and_no_ledger(
    client, org, production, service, low_tier_service, pipeline_bot
):
    mine, _ = services.request_approval(
        data=factories.release_input(low_tier_service, production), actor=pipeline_bot
    )
    theirs, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )
    person = factories.UserFactory()
    factories.grant(person, Role.AUDITOR, low_tier_service)
    client.force_login(person)
    page = client.get(HOME).content.decode()
    assert f"/reports/releases/{mine.pk}/evidence.pdf" in page
    assert f"/reports/releases/{theirs.pk}/" not in page
    assert "/reports/ledger.jsonl" not in page
    assert 'data-testid="ledger-entries"' not in page
    assert "/reports/ledger/public-key.pem" in page  # anyone may check an export handed to them


def test_releases_to_unregulated_environments_are_not_offered(
    client, auditor, org, service, staging, pipeline_bot
):
    release, _ = services.request_approval(
        data=factories.release_input(service, staging), actor=pipeline_bot
    )
    client.force_login(auditor)
    assert f"/reports/releases/{release.pk}/" not in client.get(HOME).content.decode()


def test_the_home_page_costs_the_same_queries_whatever_the_history(
    client, auditor, org, service, production, pipeline_bot
):
    client.force_login(auditor)
    client.get(HOME)  # warm the session and content types

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client.get(HOME).status_code == 200
        return len(captured)

    before = count()
    for _ in range(3):
        services.request_approval(
            data=factories.release_input(service, production), actor=pipeline_bot
        )
        LedgerVerification.objects.create(status=LedgerVerification.Status.PASSED)
    assert count() == before
    assert before <= 12
