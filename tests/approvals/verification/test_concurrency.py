"""Two workers running the verification sweep at the same moment poll each deployment once
(PostgreSQL: real concurrent transactions, each thread with its own connection)."""

from __future__ import annotations

import pytest

from approvals.verification import polling
from approvals.verification.models import HealthCheck
from tests.approvals.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_at_once_poll_each_deployment_once(approved_release, deploy, service, stub):
    service.health_urls = [stub.url("/healthz")]
    service.save(update_fields=["health_urls"])
    deployments = [deploy(approved_release) for _ in range(4)]
    now = deployments[-1].created_at

    handled = run_together(lambda: polling.verify_due(now), lambda: polling.verify_due(now))

    assert sum(handled) == 4
    assert HealthCheck.objects.count() == 4
    assert sorted(HealthCheck.objects.values_list("deployment_id", flat=True)) == sorted(
        d.pk for d in deployments
    )
    assert len(stub.received("GET", "/healthz")) == 4
