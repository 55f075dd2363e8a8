"""The metrics match values computed by hand on a known history (see history.py beside this).

Percentiles are percentile_cont: for n sorted values, p at position p*(n-1), interpolated
linearly between its neighbours. Hours are shown with two decimals, rates in % with one.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache
from django.core.management import call_command

from approvals.models import Deployment
from reporting.metrics.models import DecisionFact, MetricsRefresh, ReleaseFact, StageFact
from reporting.metrics.rollups import refresh_metrics
from reporting.metrics.tasks import LOCK, refresh_metrics_task
from tests.reporting.metrics import history

RELEASES = "/metrics/releases/"
CAB = "/metrics/cab/"
ADMINISTRATION = "/metrics/administration/"


@pytest.fixture
def known(org, production, staging, requester, approver, second_approver) -> history.History:
    made = history.build(production, staging, requester, approver, second_approver)
    refresh_metrics()
    return made


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    return client


def table(client, url: str, chart: str, **query) -> list[list[str]]:
    """The panel's CSV, as rows (header first)."""
    response = client.get(url, {**history.PERIOD, **query, "format": "csv", "chart": chart})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(response.content.decode())))


def page_rows(client, url: str, chart: str, **query) -> list[list[str]]:
    """The same panel's rows as the page's table holds them."""
    response = client.get(url, {**history.PERIOD, **query})
    assert response.status_code == 200
    panel = next(p for p in response.context["panels"] if p.name == chart)
    return [panel.columns, *panel.rows]


# --- Time to approve ------------------------------------------------------------------------------


def test_time_to_approve_by_change_type_matches_the_hand_computed_mean_p50_p90(known, admin_client):
    # normal: R1 2, R2 6, R4 30, R6 80 → mean 118/4 = 29.5;
    #   p50 at 1.5: 6 + (30-6)*0.5 = 18; p90 at 2.7: 30 + (80-30)*0.7 = 65.
    # standard: R3 0.5, R5 3 → mean 1.75; p50 at 0.5: 0.5 + 2.5*0.5 = 1.75; p90 at 0.9: 2.75.
    expected = [
        ["Change type", "Count", "Mean (h)", "p50 (h)", "p90 (h)"],
        ["normal", "4", "29.50", "18.00", "65.00"],
        ["standard", "2", "1.75", "1.75", "2.75"],
    ]
    assert table(admin_client, ADMINISTRATION, "time_to_approve") == expected
    assert page_rows(admin_client, ADMINISTRATION, "time_to_approve") == expected


def test_time_to_approve_by_stage_and_by_approver(known, admin_client):
    # Service owners: 0.5 2 3 6 30 80 → mean 121.5/6 = 20.25; p50 at 2.5: 3 + 3*0.5 = 4.5;
    #   p90 at 4.5: 30 + 50*0.5 = 55.
    assert table(admin_client, ADMINISTRATION, "time_to_approve", by="stage")[1:] == [
        ["Service owners", "6", "20.25", "4.50", "55.00"]
    ]
    # alice: 0.5 2 6 → mean 8.5/3 = 2.83; p50 2; p90 at 1.8: 2 + 4*0.8 = 5.2.
    # bob: 3 30 80 → mean 113/3 = 37.67; p50 30; p90 at 1.8: 30 + 50*0.8 = 70.
    assert table(admin_client, ADMINISTRATION, "time_to_approve", by="approver")[1:] == [
        ["alice", "3", "2.83", "2.00", "5.20"],
        ["bob", "3", "37.67", "30.00", "70.00"],
    ]


def test_time_to_approve_by_team_follows_the_filters(known, admin_client):
    # Payments: R1 2, R2 6, R3 0.5 → mean 2.83, p50 2, p90 5.2; Discovery: R4 30, R5 3, R6 80.
    assert table(admin_client, ADMINISTRATION, "time_to_approve", by="team")[1:] == [
        ["Discovery", "3", "37.67", "30.00", "70.00"],
        ["Payments", "3", "2.83", "2.00", "5.20"],
    ]
    # Production only: normal R1 2, R2 6, R4 30, R6 80 (standard releases went to staging).
    by_type = table(admin_client, ADMINISTRATION, "time_to_approve", environment="production")
    assert by_type[1:] == [["normal", "4", "29.50", "18.00", "65.00"]]
    # search in staging: R5 alone.
    only = table(
        admin_client, ADMINISTRATION, "time_to_approve", service="search", environment="staging"
    )
    assert only[1:] == [["standard", "1", "3.00", "3.00", "3.00"]]


# --- Bottlenecks and SLA --------------------------------------------------------------------------


def test_bottleneck_approvers_are_ranked_by_the_waiting_time_before_their_decisions(
    known, admin_client
):
    # bob 3 + 30 + 80 = 113 h, alice 0.5 + 2 + 6 = 8.5 h.
    assert table(admin_client, CAB, "bottleneck_people") == [
        ["Approver", "Decisions", "Waited (h)", "Mean (h)", "p90 (h)"],
        ["bob", "3", "113.00", "37.67", "70.00"],
        ["alice", "3", "8.50", "2.83", "5.20"],
    ]


def test_bottleneck_stages_add_the_stages_still_open(known, admin_client):
    [header, row] = table(admin_client, CAB, "bottleneck_stages")
    assert header[:6] == ["Stage", "Finished", "Waited (h)", "Mean (h)", "p90 (h)", "Open now"]
    # Six finished (121.5 h); R10's stage opened on 29 Sep and is still waiting.
    assert row[:6] == ["Service owners", "6", "121.50", "20.25", "55.00", "1"]
    assert float(row[6]) > 24 * 60  # open since September: more than 60 days by now


def test_sla_attainment_and_breach_rate_count_open_overdue_stages_as_breaches(known, admin_client):
    # 4 h SLA. Met: 0.5, 2, 3 (3). Breached: 6, 30, 80 (3). R10 open past due: 1.
    # Judged 3 + 3 + 1 = 7: attainment 3/7 = 42.9 %, breach rate 4/7 = 57.1 %.
    assert table(admin_client, CAB, "sla") == [
        [
            "Stage",
            "SLA target (h)",
            "Finished",
            "Met",
            "Breached",
            "Open overdue",
            "Attainment (%)",
            "Breach rate (%)",
        ],
        ["Service owners", "4.00", "6", "3", "3", "1", "42.9", "57.1"],
    ]


# --- Abandonment and outcomes ---------------------------------------------------------------------


def test_abandonment_breakdown(known, admin_client):
    # Closed in the quarter: R1-R9 and R12 (10); plus R11, never decided: 11 requests judged.
    # Superseded R9 (rejected, asked again by R10), withdrawn R7, expired R8, never decided R11:
    # 1/11 = 9.1 % each; 4/11 = 36.4 % abandoned. R12 was rejected and not asked again.
    assert table(admin_client, RELEASES, "abandonment") == [
        ["Reason", "Requests", "Share of requests (%)"],
        ["Superseded by a new request", "1", "9.1"],
        ["Withdrawn", "1", "9.1"],
        ["Expired", "1", "9.1"],
        ["Never decided", "1", "9.1"],
    ]
    panel = next(
        p
        for p in admin_client.get(RELEASES, history.PERIOD).context["panels"]
        if p.name == "abandonment"
    )
    assert panel.stats == [("Requests", "11"), ("Abandoned", "4"), ("Abandonment rate (%)", "36.4")]


def test_failure_and_rollback_rates_by_approval_delay(known, admin_client):
    # <1h: R3 ok. 1-4h: R1 ok, R5 failed → 1/2. 4-24h: R2 rolled back (a failure too) → 1/1.
    # 1-3d: R4 never deployed, no rate. >3d: R6 failed its verification → 1/1, no rollback.
    assert table(admin_client, RELEASES, "outcomes_by_delay") == [
        [
            "Time to approve",
            "Approved",
            "Deployed",
            "Failed",
            "Rolled back",
            "Failure rate (%)",
            "Rollback rate (%)",
        ],
        ["Under 1 hour", "1", "1", "0", "0", "0.0", "0.0"],
        ["1 to 4 hours", "2", "2", "1", "0", "50.0", "0.0"],
        ["4 to 24 hours", "1", "1", "1", "1", "100.0", "100.0"],
        ["1 to 3 days", "1", "0", "0", "0", "", ""],
        ["Over 3 days", "1", "1", "1", "0", "100.0", "0.0"],
    ]


def test_exceptions_and_unapproved_deployments_per_quarter(known, admin_client):
    assert table(admin_client, CAB, "exceptions") == [
        ["Quarter", "Emergency bypasses", "Freeze overrides"],
        ["2026 Q3", "1", "1"],
    ]
    assert table(admin_client, CAB, "unapproved") == [
        ["Quarter", "Releases deployed unapproved"],
        ["2026 Q3", "1"],
    ]
    # Discovery declared nothing, had no override and deployed nothing unapproved.
    assert table(admin_client, CAB, "exceptions", team="discovery")[1:] == [["2026 Q3", "0", "0"]]
    assert table(admin_client, CAB, "unapproved", service="search")[1:] == [["2026 Q3", "0"]]


# --- The rollups ----------------------------------------------------------------------------------


def _facts() -> list[tuple]:
    return [
        sorted(ReleaseFact.objects.values_list("release", "outcome", "abandonment", "failed")),
        sorted(StageFact.objects.values_list("stage", "wait_seconds", "breached")),
        sorted(DecisionFact.objects.values_list("decision", "approver", "wait_seconds")),
    ]


def test_refreshing_again_writes_the_same_rows(known):
    before = _facts()
    assert len(before[0]) == 10 and len(before[1]) == 6 and len(before[2]) == 6
    assert refresh_metrics() == 0  # nothing changed since the last refresh
    assert refresh_metrics(full=True) == 12  # every release with a request, rebuilt
    assert _facts() == before
    assert MetricsRefresh.objects.count() == 1


def test_a_refresh_picks_up_what_changed_since_the_last(known, requester, eager):
    r4 = known.releases["R4"]
    # Reported now, long after the watermark the first refresh left.
    Deployment.objects.create(
        release=r4, status=Deployment.Status.ROLLED_BACK, reported_by=requester, digest=r4.digest
    )
    assert refresh_metrics_task.delay().get() == 1  # R4 alone
    fact = ReleaseFact.objects.get(release=r4)
    assert (fact.deployed, fact.failed, fact.rolled_back) == (True, True, True)


def test_a_refresh_started_while_another_runs_does_nothing(known, requester, eager):
    r4 = known.releases["R4"]
    Deployment.objects.create(
        release=r4, status=Deployment.Status.FAILED, reported_by=requester, digest=r4.digest
    )
    cache.add(LOCK, "1")  # another worker is refreshing
    assert refresh_metrics_task.delay().get() == 0
    assert not ReleaseFact.objects.get(release=r4).deployed
    cache.delete(LOCK)  # it finished
    assert refresh_metrics_task.delay().get() == 1
    assert ReleaseFact.objects.get(release=r4).failed


def test_the_refresh_command_rebuilds_what_changed_or_everything(known):
    out = io.StringIO()
    call_command("refresh_metrics", stdout=out)
    call_command("refresh_metrics", "--full", stdout=out)
    assert out.getvalue() == (
        "Metrics rollups: 0 releases rebuilt.\nMetrics rollups: 12 releases rebuilt.\n"
    )
