"""The demo's metrics history: written once, in the rollups, and enough to draw every chart."""

from __future__ import annotations

import io

from django.core.management import call_command

from approvals.models import ApprovalRequest, Release
from reporting.metrics.models import ReleaseFact

COMMAND = "seed_demo_metrics"


def run() -> str:
    out = io.StringIO()
    call_command(COMMAND, stdout=out)
    return out.getvalue()


def test_the_demo_history_is_written_once_and_fills_the_metrics_pages(
    client, org, administrator, low_tier_service, other_service
):
    assert run() == "Demo metrics history: 360 releases, 360 in the rollups.\n"
    closed = ApprovalRequest.objects.exclude(status=ApprovalRequest.Status.PENDING).count()
    assert closed == 360 and ReleaseFact.objects.count() == 360
    assert run() == "Demo metrics history: already present.\n"
    assert Release.objects.count() == 360

    client.force_login(administrator)
    response = client.get("/metrics/administration/")
    assert response.status_code == 200
    # Emergencies and freeze overrides come from the rest of the demo, not from this history.
    for panel in response.context["panels"]:
        if panel.name == "exceptions":
            continue
        assert any(bar.height > 0 for bar in panel.chart["bars"]), panel.name
