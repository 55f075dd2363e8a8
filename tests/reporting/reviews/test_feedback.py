"""Workflow feedback: the requester rates, once the request has ended; administrators read it per
policy rule next to what the rule cost and caught."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalStage, Deployment, Release
from governance.models import LedgerEntry
from reporting.reviews import services
from reporting.reviews.models import WorkflowFeedback
from tests import factories

pytestmark = pytest.mark.django_db


def request_release(service, environment, bot, **fields) -> Release:
    release, _ = approvals.request_approval(
        data=factories.release_input(service, environment, triggered_by="dave", **fields),
        actor=bot,
    )
    return release


def waited(release: Release, key: str, hours: float | None) -> None:
    """The stage waited `hours` from its activation to its decision (None: never activated)."""
    start = timezone.now() - timedelta(days=2)
    ApprovalStage.objects.filter(request__release=release, key=key).update(
        activated_at=start if hours is not None else None,
        completed_at=start + timedelta(hours=hours) if hours is not None else None,
    )


@pytest.fixture
def history(
    org,
    service,
    low_tier_service,
    production,
    staging,
    pipeline_bot,
    requester,
    approver,
    second_approver,
    cab_member,
):
    """dave's releases of the last weeks, decided, deployed and rated:

    approved: payments-api to production (service 2 h, CAB 6 h), deployed and failed, "noise";
    rejected: payments-api to production at the service stage (4 h), "useful";
    approved: web-frontend to staging (1 h), "noise", no comment;
    pending: web-frontend to production (not rateable yet);
    out of the period: web-frontend to staging requested 200 days ago, rated "noise".
    """
    approved = request_release(service, production, pipeline_bot)
    for person in (approver, second_approver, cab_member):
        factories.decide(approved, person)
    rejected = request_release(service, production, pipeline_bot)
    factories.decide(rejected, approver, "reject", "No rollback plan.")
    staged = request_release(low_tier_service, staging, pipeline_bot)
    factories.decide(staged, approver)
    pending = request_release(low_tier_service, production, pipeline_bot)
    old = request_release(low_tier_service, staging, pipeline_bot)
    factories.decide(old, approver)
    Release.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=200))
    waited(approved, "service", 2)
    waited(approved, "cab", 6)
    waited(rejected, "service", 4)
    waited(rejected, "cab", None)
    waited(staged, "service", 1)
    Deployment.objects.create(
        release=approved, status="failed", reported_by=pipeline_bot, digest=approved.digest
    )
    Deployment.objects.create(
        release=staged, status="succeeded", reported_by=pipeline_bot, digest=staged.digest
    )
    for release, rating, comment in (
        (approved, "noise", "CAB again for a config flag"),
        (rejected, "useful", "Caught the missing rollback plan"),
        (staged, "noise", ""),
        (old, "noise", "old news"),
    ):
        services.give_feedback(release=release, rating=rating, comment=comment, actor=requester)
    return {"approved": approved, "rejected": rejected, "staged": staged, "pending": pending}


# --- Rating -----------------------------------------------------------------------------------


def test_the_requester_rates_once_the_request_has_ended_and_may_change_it(history, requester):
    release = history["approved"]
    feedback = WorkflowFeedback.objects.get(release=release)
    assert (feedback.rating, feedback.rated_by) == ("noise", requester)
    services.give_feedback(
        release=release, rating="useful", comment="On reflection", actor=requester
    )
    feedback.refresh_from_db()
    assert (feedback.rating, feedback.comment) == ("useful", "On reflection")
    assert WorkflowFeedback.objects.filter(release=release).count() == 1
    kinds = list(
        LedgerEntry.objects.filter(subject=f"workflow_feedback:{release.pk}")
        .order_by("seq")
        .values_list("kind", "actor", "payload__rating")
    )
    assert kinds == [
        ("workflow_feedback.given", "dave", "noise"),
        ("workflow_feedback.changed", "dave", "useful"),
    ]


def test_a_pending_request_cannot_be_rated(history, requester):
    before = LedgerEntry.objects.count()
    with pytest.raises(services.PermissionDenied, match="once the approval request has ended"):
        services.give_feedback(
            release=history["pending"], rating="noise", comment="", actor=requester
        )
    assert not WorkflowFeedback.objects.filter(release=history["pending"]).exists()
    assert LedgerEntry.objects.count() == before


@pytest.mark.parametrize("fixture", ["approver", "cab_member", "administrator", "pipeline_bot"])
def test_only_the_requester_rates(history, request, fixture):
    person = request.getfixturevalue(fixture)
    before = (
        list(WorkflowFeedback.objects.values_list("rating", "comment")),
        LedgerEntry.objects.count(),
    )
    with pytest.raises(services.PermissionDenied, match="Only the release's requester"):
        services.give_feedback(release=history["staged"], rating="useful", comment="", actor=person)
    assert (
        list(WorkflowFeedback.objects.values_list("rating", "comment")),
        LedgerEntry.objects.count(),
    ) == before


def test_a_rating_must_be_useful_or_noise(history, requester):
    with pytest.raises(services.InvalidReview):
        services.give_feedback(release=history["staged"], rating="meh", comment="", actor=requester)
    assert WorkflowFeedback.objects.get(release=history["staged"]).rating == "noise"


# --- Feedback by rule -------------------------------------------------------------------------


def rows_by_rule(client, administrator, query: str = "") -> dict[str, dict]:
    client.force_login(administrator)
    body = client.get(f"{reverse('reporting:workflow_feedback_csv')}{query}").content.decode()
    return {row["rule"]: row for row in csv.DictReader(io.StringIO(body))}


def test_each_rule_shows_its_releases_ratings_waiting_and_what_it_caught(
    client, history, administrator
):
    rows = rows_by_rule(client, administrator)
    assert set(rows) == {"production-dual-control", "critical-or-sox-cab", "staging-one-approver"}
    numbers = {
        rule: (
            row["releases"],
            row["useful"],
            row["noise"],
            row["median_wait_hours"],
            row["rejections"],
            row["failed_or_rolled_back_deployments"],
        )
        for rule, row in rows.items()
    }
    assert numbers == {
        # approved, rejected and pending; stages waited 2 h and 4 h; one rejection; one failure
        "production-dual-control": ("3", "1", "1", "3.0", "1", "1"),
        # approved and rejected (its CAB stage never opened); the CAB waited 6 h
        "critical-or-sox-cab": ("2", "1", "1", "6.0", "0", "1"),
        # the staging release in the period only
        "staging-one-approver": ("1", "0", "1", "1.0", "0", "0"),
    }
    assert rows["critical-or-sox-cab"]["description"].startswith("Tier-1 or SOX-scoped")


def test_the_page_shows_the_rules_with_their_latest_comments(client, history, administrator):
    client.force_login(administrator)
    page = client.get(reverse("reporting:workflow_feedback")).content.decode()
    assert page.count('data-testid="rule-row"') == 3
    cab = page[page.index('data-rule="critical-or-sox-cab"') :]
    cab = cab[: cab.index("</tr>")]
    assert "CAB again for a config flag" in cab and "Caught the missing rollback plan" in cab
    assert "old news" not in page  # its release was requested before the period
    assert page.count('data-testid="noise-bar"') == 3
    assert page.count('data-testid="useful-bar"') == 2


def test_a_rule_that_applied_an_sla_counts_under_its_own_id(
    client, org, service, production, pipeline_bot, approver, requester, administrator
):
    service.business_function = "payments"
    service.save()
    release = request_release(service, production, pipeline_bot)
    factories.decide(release, approver, "reject", "Not now.")
    services.give_feedback(release=release, rating="noise", comment="", actor=requester)
    rows = rows_by_rule(client, administrator)
    sla = rows["business-critical-sla"]
    assert (sla["releases"], sla["noise"], sla["rejections"]) == ("1", "1", "1")
    assert sla["description"].startswith("Business-critical functions (payments)")
    assert not [rule for rule in rows if "(SLA" in rule]


def test_a_longer_period_takes_in_older_releases(client, history, administrator):
    start = (timezone.localdate() - timedelta(days=365)).isoformat()
    rows = rows_by_rule(client, administrator, f"?start={start}")
    assert (rows["staging-one-approver"]["releases"], rows["staging-one-approver"]["noise"]) == (
        "2",
        "2",
    )


@pytest.mark.parametrize(
    "query, message",
    [
        ("?start=2026-05-01&end=2026-04-01", b"The period must start on or before its end."),
        ("?start=2019-01-01&end=2026-04-01", b"Choose a period of at most three years."),
        ("?start=yesterday", b"Enter a valid date."),
    ],
)
def test_a_bad_period_is_a_400_with_the_reason(client, history, administrator, query, message):
    client.force_login(administrator)
    page = client.get(f"{reverse('reporting:workflow_feedback')}{query}")
    assert page.status_code == 400 and message in page.content
    assert b'data-testid="rule-row"' not in page.content
    export = client.get(f"{reverse('reporting:workflow_feedback_csv')}{query}")
    assert export.status_code == 400 and message in export.content


@pytest.mark.parametrize(
    "fixture", ["approver", "release_manager", "cab_member", "security_approver", "auditor"]
)
def test_feedback_by_rule_is_for_administrators(client, history, request, fixture):
    client.force_login(request.getfixturevalue(fixture))
    for name in ("reporting:workflow_feedback", "reporting:workflow_feedback_csv"):
        response = client.get(reverse(name))
        assert response.status_code == 403
        assert (
            b"CAB again" not in response.content and b"critical-or-sox-cab" not in response.content
        )


def test_anonymous_visitors_sign_in_first(client, history):
    response = client.get(reverse("reporting:workflow_feedback"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# Session and user, the administrator check, the navigation's roles, then the stages, the
# ratings, the failed deployments of the period's releases and the active policy.
FEEDBACK_PAGE_QUERIES = 8


def test_the_page_costs_the_same_queries_whatever_the_number_of_releases(
    client,
    history,
    administrator,
    service,
    production,
    pipeline_bot,
    requester,
    approver,
    django_assert_num_queries,
):
    client.force_login(administrator)
    url = reverse("reporting:workflow_feedback")
    with django_assert_num_queries(FEEDBACK_PAGE_QUERIES):
        assert client.get(url).status_code == 200
    for _ in range(5):
        release = request_release(service, production, pipeline_bot)
        factories.decide(release, approver, "reject", "No.")
        services.give_feedback(release=release, rating="useful", comment="ok", actor=requester)
    with django_assert_num_queries(FEEDBACK_PAGE_QUERIES):
        page = client.get(url).content.decode()
    row = page[page.index('data-rule="production-dual-control"') :]
    assert '<td class="text-end" data-testid="releases">8</td>' in row
