"""Approver pages: scope, permission matrix, decisions through the UI, pinned query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest, ApprovalStage, Decision
from governance.models import LedgerEntry, Role
from tests import factories

pytestmark = pytest.mark.django_db

PAGES = ["approvals:queue", "approvals:release_list", "reporting:dashboard"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_send_anonymous_visitors_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# The page and its live updates (polled while it is open) answer everyone alike.
@pytest.mark.parametrize("view", ["approvals:release_detail", "approvals:release_updates"])
@pytest.mark.parametrize(
    ("persona", "status"),
    [
        # who            release page
        ("anonymous", 302),
        ("outsider", 404),  # no role anywhere: the release does not exist for them
        ("other_service_approver", 404),
        ("requester", 200),
        ("approver", 200),
        ("cab_member", 200),
        ("auditor", 200),
    ],
)
def test_release_page_permission_matrix(client, production_release, request, persona, status, view):
    if persona != "anonymous":
        client.force_login(_persona(request, persona))
    response = client.get(reverse(view, args=[production_release.pk]))
    assert response.status_code == status
    if status == 404:
        assert b"payments-api" not in response.content  # nothing about the release leaks


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("anonymous", 302),
        ("outsider", 404),
        ("other_service_approver", 404),
        ("requester", 409),  # in scope, but a conflict of interest: refused with the reason
        ("auditor", 409),  # may read, may not decide
        ("cab_member", 409),  # the CAB stage is not open yet
    ],
)
def test_decide_permission_matrix_changes_nothing_when_refused(
    client, production_release, request, persona, status
):
    if persona != "anonymous":
        client.force_login(_persona(request, persona))
    before = LedgerEntry.objects.count()
    response = client.post(
        reverse("approvals:release_decide", args=[production_release.pk]),
        {"verdict": "approve", "rationale": "looks fine"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == status
    assert Decision.objects.count() == 0
    assert LedgerEntry.objects.count() == before
    production_release.approval.refresh_from_db()
    assert production_release.approval.status == ApprovalRequest.Status.PENDING


def _persona(request, name: str):
    if name == "other_service_approver":
        user = factories.UserFactory(username="oscar")
        factories.grant(user, Role.APPROVER, factories.ServiceFactory(slug="unrelated"))
        return user
    return request.getfixturevalue(name)


def test_requester_sees_no_approve_button_and_the_reason(client, production_release, requester):
    client.force_login(requester)
    response = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    body = response.content.decode()
    assert 'value="approve"' not in body
    assert "You requested this release" in body


def test_approver_sees_the_decision_form_plan_and_explain(client, production_release, approver):
    client.force_login(approver)
    response = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    body = response.content.decode()
    assert 'value="approve"' in body
    assert "production-dual-control" in body  # the explain view names the rule
    assert "critical-or-sox-cab" in body
    assert "Bob" in body  # who else can approve the stage
    assert "approval.requested" in body  # the ledger entries of this release


def test_htmx_approval_records_the_decision_and_swaps_the_panel(
    client, production_release, approver
):
    client.force_login(approver)
    response = client.post(
        reverse("approvals:release_decide", args=[production_release.pk]),
        {"verdict": "approve", "rationale": "Reviewed the diff"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body  # a partial, not a page
    assert "1 of 2" in body
    decision = Decision.objects.get()
    assert (decision.approver, decision.verdict, decision.rationale, decision.channel) == (
        approver,
        "approve",
        "Reviewed the diff",
        "ui",
    )
    assert "already decided" in body


def test_plain_post_redirects_back_to_the_release(client, production_release, approver):
    client.force_login(approver)
    url = reverse("approvals:release_decide", args=[production_release.pk])
    response = client.post(url, {"verdict": "reject", "rationale": "Missing rollback plan"})
    assert response.status_code == 302
    production_release.approval.refresh_from_db()
    assert production_release.approval.status == ApprovalRequest.Status.REJECTED


def test_missing_rationale_is_a_form_error_and_writes_nothing(client, production_release, approver):
    client.force_login(approver)
    before = LedgerEntry.objects.count()
    response = client.post(
        reverse("approvals:release_decide", args=[production_release.pk]),
        {"verdict": "approve", "rationale": "   "},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "A rationale is required" in response.content.decode()
    assert Decision.objects.count() == 0
    assert LedgerEntry.objects.count() == before


def test_unknown_verdict_is_refused(client, production_release, approver):
    client.force_login(approver)
    response = client.post(
        reverse("approvals:release_decide", args=[production_release.pk]),
        {"verdict": "maybe", "rationale": "hmm"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert Decision.objects.count() == 0


def test_decide_refuses_get(client, production_release, approver):
    client.force_login(approver)
    response = client.get(reverse("approvals:release_decide", args=[production_release.pk]))
    assert response.status_code == 405


def test_queue_shows_only_what_i_may_decide_now(
    client, production_release, approver, cab_member, requester
):
    client.force_login(approver)
    assert production_release.version in client.get(reverse("approvals:queue")).content.decode()
    client.force_login(cab_member)  # the CAB stage opens only after the service stage
    assert production_release.version not in client.get(reverse("approvals:queue")).content.decode()
    client.force_login(requester)
    assert production_release.version not in client.get(reverse("approvals:queue")).content.decode()


def test_queue_drops_a_release_once_i_decided(client, production_release, approver):
    services.record_decision(
        release=production_release, actor=approver, verdict="approve", rationale="ok"
    )
    client.force_login(approver)
    body = client.get(reverse("approvals:queue")).content.decode()
    assert "Nothing waits for you" in body


def test_release_list_filters_by_status_and_text(
    client, org, service, staging, pipeline_bot, approver
):
    services.request_approval(
        data=factories.release_input(service, staging, version="7.0.0"), actor=pipeline_bot
    )
    rejected, _ = services.request_approval(
        data=factories.release_input(service, staging, version="7.0.1"), actor=pipeline_bot
    )
    services.record_decision(release=rejected, actor=approver, verdict="reject", rationale="no")
    client.force_login(approver)
    url = reverse("approvals:release_list")
    body = client.get(url, {"status": "rejected"}).content.decode()
    assert "7.0.1" in body and "7.0.0" not in body
    body = client.get(url, {"q": "7.0.0"}, HTTP_HX_REQUEST="true").content.decode()
    assert "7.0.0" in body and "7.0.1" not in body and "<html" not in body


def _make_pending(count: int, service, env, bot) -> None:
    for _ in range(count):
        services.request_approval(data=factories.release_input(service, env), actor=bot)


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "name", ["approvals:queue", "approvals:release_list", "reporting:dashboard"]
)
def test_list_pages_use_the_same_number_of_queries_for_1_and_30_rows(
    client, org, service, production, pipeline_bot, approver, name
):
    client.force_login(approver)
    _make_pending(1, service, production, pipeline_bot)
    _queries(client, reverse(name))  # warm-up: per-process caches (content types, permissions)
    one = _queries(client, reverse(name))
    _make_pending(29, service, production, pipeline_bot)
    many = _queries(client, reverse(name))
    assert one == many
    assert many <= 12


def test_release_page_query_count_does_not_grow_with_decisions(
    client, org, service, production, pipeline_bot, approver, second_approver
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )
    client.force_login(approver)
    url = reverse("approvals:release_detail", args=[release.pk])
    _queries(client, url)  # warm-up: per-process caches (content types, permissions)
    before = _queries(client, url)
    services.record_decision(
        release=release, actor=second_approver, verdict="approve", rationale="ok"
    )
    after = _queries(client, url)
    assert before == after == RELEASE_PAGE_QUERIES


# Pinned for a release with no planned time whose change has no window: the session and the
# viewer, the live version, the release with its stages, decisions, approvers, evidence and
# deployments, the gate's holding incidents and freezes, owning teams, the viewer's authority,
# the ledger, the freeze panel, the policy version; then the Change and Incidents panels' three
# (the services the viewer sees, whether the change page opens for them, the incidents in one
# query), the Reviews panel's one, the Pipeline runs panel's one and the Promotion panel's one
# (clusters holding the digest and the environment's clusters). A planned release adds its
# conflict boards:
# tests/approvals/test_release_page_change.py.
RELEASE_PAGE_QUERIES = 32


def test_the_page_says_rejected_marks_superseded_evidence_and_links_the_change(
    client, api, production_release, approver, pipeline_bot
):
    from changes.models import ChangeRecord

    ChangeRecord.objects.filter(pk=production_release.change_id).update(
        external_url="https://itsm.example.com/change/CHG42"
    )
    api(pipeline_bot).post(
        f"/api/v1/releases/{production_release.pk}/evidence/",
        {"kind": "tests", "status": "passed", "summary": {"passed": 11, "failed": 0}},
    )
    factories.decide(production_release, approver, "reject", "Not yet.")
    client.force_login(approver)

    body = client.get(reverse("approvals:release_detail", args=[production_release.pk])).content
    page = body.decode()

    assert "rejected" in page and "rejectd" not in page
    assert page.count('class="superseded"') == 1  # the first tests result, replaced by the second
    assert '<a class="mono" href="https://itsm.example.com/change/CHG42"' in page


def test_the_queue_filters_by_environment_change_type_overdue_and_text(
    client, org, service, production, staging, pipeline_bot, approver
):
    prod, _ = services.request_approval(
        data=factories.release_input(service, production, version="5.0.0"), actor=pipeline_bot
    )
    services.request_approval(
        data=factories.release_input(service, staging, version="5.1.0", change_type="standard"),
        actor=pipeline_bot,
    )
    ApprovalStage.objects.filter(request__release=prod).update(
        due_at=timezone.now() - timedelta(hours=1)
    )
    client.force_login(approver)
    url = reverse("approvals:queue")

    def listed(**params) -> list[str]:
        page = client.get(url, params).context["page"]
        return sorted(s.request.release.version for s in page.object_list)

    assert listed() == ["5.0.0", "5.1.0"]
    assert listed(environment="staging") == ["5.1.0"]
    assert listed(change_type="standard") == ["5.1.0"]
    assert listed(overdue="on") == ["5.0.0"]
    assert listed(q="5.1") == ["5.1.0"]
    assert listed(service="web-frontend") == []
    assert listed(environment="moon") == ["5.0.0", "5.1.0"]  # an invalid filter filters nothing
    partial = client.get(url, {"environment": "staging"}, HTTP_HX_REQUEST="true").content
    assert b"<html" not in partial and b"5.1.0" in partial
    assert b'data-testid="queue-cards"' in partial
