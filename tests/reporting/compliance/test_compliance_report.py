"""The compliance report's content: one row per release in scope, exactly as an auditor reads it."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, Decision, Deployment, Release
from governance.models import Role
from reporting.compliance.formats import safe_cell
from reporting.compliance.report import ComplianceReport, ReportQuery
from tests import factories
from tests.approvals.emergencies.helpers import declare_for
from tests.reporting.compliance.seed import History, iso, period, request, seed

pytestmark = pytest.mark.django_db

HEADER = [
    "change_ref",
    "service",
    "environment",
    "version",
    "digest",
    "requested_at",
    "requester",
    "triggered_by",
    "decisions",
    "sod_check",
    "required_evidence",
    "present_evidence",
    "required_checks",
    "exceptions",
    "deployments",
    "outcome",
]
TESTS_REQUIRED = "tests:passed (at least 1 passed, at most 0 failed)"


@pytest.fixture
def history(
    org,
    service,
    low_tier_service,
    production,
    staging,
    requester,
    approver,
    cab_member,
    pipeline_bot,
) -> History:
    return seed(
        service=service,
        low_tier_service=low_tier_service,
        production=production,
        staging=staging,
        requester=requester,
        approver=approver,
        cab_member=cab_member,
        pipeline_bot=pipeline_bot,
    )


def signed_in(client, user):
    client.force_login(user)
    return client


def csv_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def decisions_of(release: Release) -> list[Decision]:
    return list(Decision.all_objects.filter(request__release=release).order_by("created_at", "pk"))


def deployment_of(release: Release) -> Deployment:
    return Deployment.objects.get(release=release)


def first_columns(release: Release, requester: str, trigger: str) -> list[str]:
    release = Release.objects.select_related("change", "service", "environment").get(pk=release.pk)
    return [
        release.change.ref,
        release.service.name,
        "Production",
        release.version,
        release.digest,
        iso(release.created_at),
        requester,
        trigger,
    ]


def expected_rows(history: History) -> list[list[str]]:
    """Each row written out by hand from what the seed did."""
    a1, a2, a3 = decisions_of(history.approved)
    shipped = deployment_of(history.approved)
    pushed = deployment_of(history.unapproved)
    (e1,) = decisions_of(history.emergency)
    emergency = EmergencyException.objects.get(change=history.emergency.change_id)
    emergency_approval = ApprovalRequest.objects.get(release=history.emergency)
    (r1,) = decisions_of(history.rejected)
    return [
        [
            *first_columns(history.approved, "ci-bot", "dave"),
            f"{iso(a1.created_at)} Service approval (service_approvers): alice approved: "
            f"Looks good. | {iso(a2.created_at)} Service approval (service_approvers): grace on "
            f"behalf of frank approved: Covering for Frank. | {iso(a3.created_at)} CAB approval "
            "(cab): carol approved: CAB agrees.",
            "pass",
            TESTS_REQUIRED,
            "tests:passed; security-scan:passed",
            "met",
            "",
            f"{iso(shipped.created_at)} succeeded approved {history.approved.digest}",
            "approved, deployed",
        ],
        [
            *first_columns(history.unapproved, "ci-bot", "dave"),
            "",
            "pass",
            TESTS_REQUIRED,
            "tests:passed",
            "",
            "",
            f"{iso(pushed.created_at)} succeeded unapproved {history.unapproved.digest}",
            "pending, deployed unapproved",
        ],
        [
            *first_columns(history.emergency, "ci-bot", "dave"),
            f"{iso(e1.created_at)} Emergency approval (service_approvers): alice approved: "
            "Emergency fix verified.",
            "pass",
            TESTS_REQUIRED,
            "tests:failed",
            f"not met: tests failed at approval {iso(emergency_approval.decided_at)}",
            f"emergency {iso(emergency.starts_at)} to {iso(emergency.ends_at)}; justification: "
            "Checkout is down for every customer.; controls: Extra monitoring during and after "
            "the deployment; secondary review: Awaiting CAB secondary review; "
            "retro review required",
            "",
            "approved",
        ],
        [
            *first_columns(history.rejected, "ci-bot", "dave"),
            f"{iso(r1.created_at)} Service approval (service_approvers): alice rejected: "
            "Missing rollback plan.",
            "pass",
            TESTS_REQUIRED,
            "tests:passed",
            "",
            "",
            "",
            "rejected",
        ],
        [
            *first_columns(history.withdrawn, "dave", ""),
            "",
            "pass",
            TESTS_REQUIRED,
            "tests:passed",
            "",
            "",
            "",
            "withdrawn",
        ],
        # The unresolved trigger's name starts with "=": written so no spreadsheet runs it.
        [
            *first_columns(history.card_vault, "ci-bot", "'=SUM(A1:A2) (unresolved)"),
            "",
            "pass",
            TESTS_REQUIRED,
            "tests:passed",
            "",
            "",
            "",
            "pending",
        ],
    ]


def test_the_csv_holds_every_sox_release_to_a_regulated_environment_in_the_period(
    client, auditor, history
):
    response = signed_in(client, auditor).get(
        reverse("reporting:compliance_csv"), {"framework": "sox", **period()}
    )

    lines = csv_of(response)
    assert lines[0] == HEADER
    assert lines[1:] == expected_rows(history)
    assert response["Content-Disposition"].startswith('attachment; filename="compliance-sox-')


def test_the_framework_matches_tags_in_any_case_and_other_frameworks(client, auditor, history):
    pci = csv_of(
        signed_in(client, auditor).get(
            reverse("reporting:compliance_csv"), {"framework": "Pci", **period()}
        )
    )

    assert [line[0] for line in pci[1:]] == [history.card_vault.change.ref]
    hipaa = csv_of(
        client.get(reverse("reporting:compliance_csv"), {"framework": "HIPAA", **period()})
    )
    assert hipaa == [HEADER]


def test_the_period_counts_whole_utc_days_at_both_ends(client, auditor, history):
    """A release at 00:00:00 of `from` and one at 23:59:59 of `to` are in; a second later out."""
    today = timezone.now().date()
    start = datetime.combine(today, time.min, UTC)
    Release.objects.filter(pk=history.approved.pk).update(created_at=start)
    Release.objects.filter(pk=history.rejected.pk).update(
        created_at=start + timedelta(days=1, seconds=-1)
    )
    Release.objects.filter(pk=history.unapproved.pk).update(created_at=start + timedelta(days=1))
    Release.objects.filter(pk=history.withdrawn.pk).update(created_at=start - timedelta(seconds=1))

    day = {"from": today.isoformat(), "to": today.isoformat()}
    lines = csv_of(
        signed_in(client, auditor).get(
            reverse("reporting:compliance_csv"), {"framework": "SOX", **day}
        )
    )

    refs = {line[0] for line in lines[1:]}
    assert history.approved.change.ref in refs
    assert history.rejected.change.ref in refs
    assert history.unapproved.change.ref not in refs
    assert history.withdrawn.change.ref not in refs


def test_a_decision_made_by_the_requester_fails_the_segregation_check(client, auditor, history):
    """Rows written around the services (an import, a repair) are shown for what they are."""
    release = history.unapproved
    approval = ApprovalRequest.objects.get(release=release)
    stage = approval.stages.get(key="service")
    Decision.objects.create(
        request=approval,
        stage=stage,
        approver=history.unapproved.triggered_by,
        verdict="approve",
        rationale="Mine.",
        digest=release.digest,
    )

    lines = csv_of(
        signed_in(client, auditor).get(
            reverse("reporting:compliance_csv"), {"framework": "sox", **period()}
        )
    )

    row = next(line for line in lines if line[0] == release.change.ref)
    assert row[9] == "fail: dave (trigger) decided in Service approval"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_cells_a_spreadsheet_would_run_get_a_leading_apostrophe(start):
    assert safe_cell(f"{start}1+1") == f"'{start}1+1"


def test_ordinary_cells_are_written_as_they_are():
    assert safe_cell("sha256:abc") == "sha256:abc"
    assert safe_cell("") == ""
    assert safe_cell(None) == ""


def _releases(count, service, production, pipeline_bot) -> None:
    for _ in range(count):
        release = request(service, production, pipeline_bot, triggered_by="dave")
        services.record_deployment(release=release, actor=pipeline_bot, status="succeeded")


# The auditor's grants (restrict), the services' tags, releases, decisions, evidence,
# deployments, emergency exceptions and the policy's compensating controls.
QUERIES_PER_BATCH = 8


@pytest.mark.parametrize("count", [5, 50])
def test_one_batch_costs_the_same_queries_for_5_and_50_releases(
    org, service, production, pipeline_bot, auditor, django_assert_num_queries, count
):
    _releases(count, service, production, pipeline_bot)
    today = timezone.now().date()
    report = ComplianceReport(ReportQuery("SOX", today, today), auditor)

    with django_assert_num_queries(QUERIES_PER_BATCH):
        rows = [row for batch in report.batches() for row in batch]

    assert len(rows) == count
    assert {row.cells["outcome"] for row in rows} == {"pending, deployed unapproved"}


def test_batches_follow_each_other_without_gaps_or_repeats(
    org, service, production, pipeline_bot, auditor
):
    _releases(5, service, production, pipeline_bot)
    same_moment = timezone.now()
    Release.objects.update(created_at=same_moment)  # keyset ties broken by id
    today = same_moment.date()

    report = ComplianceReport(ReportQuery("SOX", today, today), auditor, batch_size=2)
    batches = list(report.batches())

    assert [len(batch) for batch in batches] == [2, 2, 1]
    refs = [row.cells["change_ref"] for batch in batches for row in batch]
    expected = Release.objects.order_by("pk").values_list("change__ref", flat=True)
    assert refs == list(expected)
    assert report.summary.releases == 5


def pdf_text(content: bytes, tmp_path) -> list[str]:
    """The PDF's text, page by page (pdftotext, poppler-utils)."""
    assert shutil.which("pdftotext"), "pdftotext is missing: apt-get install poppler-utils"
    path = tmp_path / "report.pdf"
    path.write_bytes(content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")


def test_the_pdf_shows_the_summary_figures_and_every_release(client, auditor, history, tmp_path):
    response = signed_in(client, auditor).get(
        reverse("reporting:compliance_pdf"), {"framework": "sox", **period()}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    pages = pdf_text(response.content, tmp_path)
    first = " ".join(pages[0].split())
    assert "Compliance report: SOX" in first
    assert f"from {period()['from']} to {period()['to']}" in first
    assert "Generated" in first and "by Erin (erin)." in first
    assert "Releases 6" in first
    assert "approved 2, pending 2, rejected 1, withdrawn 1" in first
    assert "Unapproved deployments 1" in first
    assert "Emergency changes 1" in first
    assert "Passed without a required check 1" in first
    assert "Segregation of duties failures 0" in first
    everything = " ".join(" ".join(pages).split())
    for release in history.sox_rows:
        assert release.change.ref in everything
    assert history.outside.change.ref not in everything
    assert "page 1 of" in first


def test_a_long_pdf_repeats_the_table_header_on_every_page(
    org, service, production, pipeline_bot, auditor, client, tmp_path
):
    _releases(40, service, production, pipeline_bot)
    today = timezone.now().date().isoformat()

    response = signed_in(client, auditor).get(
        reverse("reporting:compliance_pdf"), {"framework": "SOX", "from": today, "to": today}
    )

    pages = [page for page in pdf_text(response.content, tmp_path) if page.strip()]
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert "Release" in page and "Decisions" in page and "Deployments" in page
        assert f"page {number} of {len(pages)}" in page
    assert "Releases 40" in " ".join(pages[0].split())


def test_a_service_out_of_a_scoped_auditors_scope_is_left_out(client, service, history):
    scoped = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant_scoped(scoped, Role.AUDITOR, service=service)

    lines = csv_of(
        signed_in(client, scoped).get(
            reverse("reporting:compliance_csv"), {"framework": "sox", **period()}
        )
    )

    assert [line[0] for line in lines[1:]] == [r.change.ref for r in history.sox_rows[:5]]


def test_releases_under_one_emergency_change_count_as_one_emergency_change(
    org, service, production, pipeline_bot, auditor
):
    first = request(service, production, pipeline_bot, change_type="emergency")
    declare_for(first)
    request(service, production, pipeline_bot, change_type="emergency", change_ref=first.change.ref)
    today = timezone.now().date()

    report = ComplianceReport(ReportQuery("SOX", today, today), auditor)
    rows = list(report.rows())

    assert [row.cells["change_ref"] for row in rows] == [first.change.ref] * 2
    assert report.summary.emergency_changes == 1
