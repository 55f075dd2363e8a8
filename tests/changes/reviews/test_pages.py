"""The review pages: who sees and completes what, refusals that write nothing, filters, query
counts, and the panels on the change page, the release page and the dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from changes.reviews.models import Review, ReviewAction
from changes.reviews.selectors import reviews_for_release
from changes.reviews.services import ReviewOpening, open_review
from governance.models import LedgerEntry

pytestmark = pytest.mark.django_db

SEES = ["approver", "owner", "requester", "auditor"]
BLIND = ["outsider", "other_service_approver"]


@pytest.fixture
def people(approver, owner, requester, auditor, outsider, other_service_approver):
    return {
        "approver": approver,
        "owner": owner,
        "requester": requester,
        "auditor": auditor,
        "outsider": outsider,
        "other_service_approver": other_service_approver,
    }


def state(review: Review) -> tuple:
    review = Review.objects.get(pk=review.pk)
    counts = (LedgerEntry.objects.count(), ReviewAction.objects.count())
    return (review.status, review.what_happened, review.completed_by_id, *counts)


COMPLETION = {
    "what_happened": "The deployment timed out.",
    "root_cause": "The health check waited for a cold cache.",
    "reason": "",
}


# --- the list ----------------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_sign_in(client, failed_review):
    for url in (
        reverse("changes:review_list"),
        reverse("changes:review_detail", args=[failed_review.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith("/accounts/login/") or "login" in response.url


@pytest.mark.parametrize("who", SEES)
def test_people_who_see_the_service_see_its_reviews(client, failed_review, people, who):
    client.force_login(people[who])

    response = client.get(reverse("changes:review_list"))

    assert response.status_code == 200
    assert [r.pk for r in response.context["page"].object_list] == [failed_review.pk]
    assert failed_review.change.ref in response.content.decode()


@pytest.mark.parametrize("who", BLIND)
def test_people_outside_the_service_see_no_review(client, failed_review, people, who):
    client.force_login(people[who])

    response = client.get(reverse("changes:review_list"))

    assert response.status_code == 200
    assert list(response.context["page"].object_list) == []
    assert failed_review.change.ref not in response.content.decode()


def test_the_list_filters_by_status_kind_service_team_and_lateness(
    client, failed_review, post_mortem, approver, owner
):
    client.force_login(approver)
    url = reverse("changes:review_list")

    def listed(**params) -> list[int]:
        return [r.pk for r in client.get(url, params).context["page"].object_list]

    assert sorted(listed()) == sorted([failed_review.pk, post_mortem.pk])
    assert listed(kind="post_mortem") == [post_mortem.pk]
    assert listed(service="payments-api") == [failed_review.pk]
    assert sorted(listed(team="payments")) == sorted([failed_review.pk, post_mortem.pk])
    assert listed(overdue="1") == []
    Review.objects.filter(pk=post_mortem.pk).update(due_at=timezone.now() - timedelta(hours=1))
    assert listed(overdue="1") == [post_mortem.pk]
    assert listed(status="completed") == []
    assert sorted(listed(status="nonsense")) == sorted([failed_review.pk, post_mortem.pk])


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_list_uses_the_same_number_of_queries_for_1_and_30_reviews(
    client, failed_review, approver
):
    client.force_login(approver)
    url = reverse("changes:review_list")
    _queries(client, url)  # warm-up: per-process caches (content types, permissions)
    one = _queries(client, url)
    for index in range(29):
        open_review(
            opening=ReviewOpening(
                kind="post_implementation",
                trigger="rolled_back",
                change=failed_review.change,
                service=failed_review.service,
                summary=f"Rollback {index}.",
                release_id=30_000 + index,
            ),
            actor=None,
        )
    many = _queries(client, url)
    assert one == many
    assert many <= 12


# --- one review --------------------------------------------------------------------------------


@pytest.mark.parametrize("who", BLIND)
def test_a_review_outside_ones_scope_is_not_found(client, failed_review, people, who):
    client.force_login(people[who])
    before = state(failed_review)

    assert client.get(reverse("changes:review_detail", args=[failed_review.pk])).status_code == 404
    for name, args in (
        ("changes:review_complete", [failed_review.pk]),
        ("changes:review_action_add", [failed_review.pk]),
    ):
        assert client.post(reverse(name, args=args), COMPLETION).status_code == 404
    assert state(failed_review) == before


def test_the_review_page_says_why_when_and_links_the_change_and_release(
    client, failed_review, approver
):
    client.force_login(approver)

    response = client.get(reverse("changes:review_detail", args=[failed_review.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert failed_review.summary in body
    assert f"{failed_review.due_at:%Y-%m-%d %H:%M} UTC" in body
    assert reverse("changes:change_detail", args=[failed_review.change_id]) in body
    assert f'href="/approvals/releases/{failed_review.release_id}/"' in body
    # alice may read it but not complete it.
    assert response.context["complete_form"] is None
    assert "An owner of payments-api completes this review." in body


def test_an_owner_sees_the_completion_form(client, failed_review, owner):
    client.force_login(owner)

    response = client.get(reverse("changes:review_detail", args=[failed_review.pk]))

    assert response.context["complete_form"] is not None
    assert "justification_valid" not in response.context["complete_form"].fields
    assert 'name="what_happened"' in response.content.decode()


def test_the_author_is_told_another_owner_reviews(client, failed_review, requester, service):
    service.owners.add(requester)
    client.force_login(requester)

    response = client.get(reverse("changes:review_detail", args=[failed_review.pk]))

    assert response.context["complete_form"] is None
    assert "You wrote this change: another owner of payments-api completes its review." in (
        response.content.decode()
    )


def test_the_declarer_is_told_another_owner_reviews_their_emergency(client, post_mortem, web_owner):
    Review.objects.filter(pk=post_mortem.pk).update(declared_by=web_owner)
    client.force_login(web_owner)

    response = client.get(reverse("changes:review_detail", args=[post_mortem.pk]))

    page = response.content.decode()
    assert response.context["complete_form"] is None
    assert "You declared this emergency: another owner of web-frontend completes its review." in (
        page
    )
    assert "Emergency declared by</dt>" in page and "(never reviews their own emergency)" in page


def test_completing_anonymously_redirects_and_writes_nothing(client, failed_review):
    before = state(failed_review)

    response = client.post(reverse("changes:review_complete", args=[failed_review.pk]), COMPLETION)

    assert response.status_code == 302
    assert state(failed_review) == before


def test_a_reader_who_is_not_an_owner_is_refused_completion(client, failed_review, approver):
    client.force_login(approver)
    before = state(failed_review)

    response = client.post(reverse("changes:review_complete", args=[failed_review.pk]), COMPLETION)

    assert response.status_code == 400
    assert "Only an owner of payments-api may complete this review." in response.content.decode()
    assert state(failed_review) == before


def test_an_owner_completes_the_review_from_its_page(client, failed_review, owner):
    client.force_login(owner)

    response = client.post(reverse("changes:review_complete", args=[failed_review.pk]), COMPLETION)

    assert response.status_code == 302
    assert response.url == reverse("changes:review_detail", args=[failed_review.pk])
    review = Review.objects.get(pk=failed_review.pk)
    assert (review.status, review.completed_by, review.root_cause) == (
        "completed",
        owner,
        "The health check waited for a cold cache.",
    )
    page = client.get(response.url).content.decode()
    assert "The deployment timed out." in page


def test_a_post_mortem_without_a_verdict_is_a_form_error(client, post_mortem, web_owner):
    client.force_login(web_owner)
    before = state(post_mortem)

    response = client.post(reverse("changes:review_complete", args=[post_mortem.pk]), COMPLETION)

    assert response.status_code == 400
    assert response.context["complete_form"].errors["justification_valid"] == [
        "This field is required."
    ]
    assert state(post_mortem) == before

    response = client.post(
        reverse("changes:review_complete", args=[post_mortem.pk]),
        {**COMPLETION, "justification_valid": "no"},
    )
    assert response.status_code == 302
    assert Review.objects.get(pk=post_mortem.pk).justification_valid is False


# --- actions -----------------------------------------------------------------------------------


def action_body(**overrides) -> dict:
    due = timezone.now().date() + timedelta(days=7)
    return {"description": "Warm the cache first", "owner": "alice", "due_on": due, **overrides}


def test_an_owner_adds_an_action_and_its_owner_marks_it_done(
    client, failed_review, owner, approver
):
    client.force_login(owner)
    response = client.post(
        reverse("changes:review_action_add", args=[failed_review.pk]), action_body()
    )
    assert response.status_code == 302
    action = ReviewAction.objects.get()
    assert (action.description, action.owner) == ("Warm the cache first", approver)

    client.force_login(approver)
    page = client.get(reverse("changes:review_detail", args=[failed_review.pk]))
    assert page.context["action_form"] is None
    assert page.context["action_rows"] == [(action, True)]
    response = client.post(
        reverse("changes:review_action_done", args=[failed_review.pk, action.pk])
    )
    assert response.status_code == 302
    assert ReviewAction.objects.get().done_at is not None


def test_a_bad_action_is_a_form_error_and_nothing_is_written(client, failed_review, owner):
    client.force_login(owner)
    before = state(failed_review)

    response = client.post(
        reverse("changes:review_action_add", args=[failed_review.pk]),
        action_body(due_on="2020-01-01", owner="nobody"),
    )

    assert response.status_code == 400
    errors = response.context["action_form"].errors
    assert errors["owner"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert state(failed_review) == before
    response = client.post(
        reverse("changes:review_action_add", args=[failed_review.pk]),
        action_body(due_on="2020-01-01"),
    )
    assert response.status_code == 400
    assert response.context["action_form"].errors["due_on"] == [
        "The due date cannot be in the past."
    ]
    assert state(failed_review) == before


def test_a_reader_may_not_add_or_finish_actions(client, failed_review, owner, approver, requester):
    client.force_login(owner)
    client.post(reverse("changes:review_action_add", args=[failed_review.pk]), action_body())
    action = ReviewAction.objects.get()
    client.force_login(requester)
    before = state(failed_review)

    response = client.post(
        reverse("changes:review_action_add", args=[failed_review.pk]), action_body()
    )
    assert response.status_code == 400
    assert "Only an owner of payments-api may add actions." in response.content.decode()
    response = client.post(
        reverse("changes:review_action_done", args=[failed_review.pk, action.pk]), follow=True
    )
    assert "Only the action&#x27;s owner or an owner of payments-api may mark it done." in (
        response.content.decode()
    )
    assert state(failed_review) == before
    assert ReviewAction.objects.get().done_at is None


def test_marking_an_action_done_out_of_scope_is_not_found(
    client, failed_review, owner, other_service_approver
):
    client.force_login(owner)
    client.post(reverse("changes:review_action_add", args=[failed_review.pk]), action_body())
    action = ReviewAction.objects.get()
    client.force_login(other_service_approver)

    response = client.post(
        reverse("changes:review_action_done", args=[failed_review.pk, action.pk])
    )

    assert response.status_code == 404
    assert ReviewAction.objects.get().done_at is None


# --- panels elsewhere --------------------------------------------------------------------------


def test_the_change_page_lists_its_reviews(client, failed_review, approver):
    client.force_login(approver)

    response = client.get(reverse("changes:change_detail", args=[failed_review.change_id]))

    assert response.context["reviews"] == [failed_review]
    body = response.content.decode()
    assert reverse("changes:review_detail", args=[failed_review.pk]) in body
    assert 'data-testid="change-reviews"' in body


def test_the_release_partial_lists_the_release_reviews(failed_review, approved_release):
    html = render_to_string(
        "changes/reviews/partials/_release_reviews.html",
        {"reviews": reviews_for_release(approved_release.pk)},
    )

    assert reverse("changes:review_detail", args=[failed_review.pk]) in html
    assert "Deployment failed" in html
    empty = render_to_string(
        "changes/reviews/partials/_release_reviews.html", {"reviews": reviews_for_release(0)}
    )
    assert "No review of this release" in empty


def test_the_dashboard_flags_teams_with_overdue_post_mortems(
    client, post_mortem, approver, outsider
):
    due = timezone.now() - timedelta(hours=5)
    Review.objects.filter(pk=post_mortem.pk).update(due_at=due)
    client.force_login(approver)

    response = client.get(reverse("reporting:dashboard"))

    assert response.context["late_post_mortems"] == [
        {
            "service__team__slug": "payments",
            "service__team__name": "Payments",
            "count": 1,
            "oldest_due": due,
        }
    ]
    body = response.content.decode()
    assert "Payments</a>: 1 overdue, the oldest due" in body
    assert f"{due:%Y-%m-%d %H:%M} UTC" in body

    client.force_login(outsider)
    response = client.get(reverse("reporting:dashboard"))
    assert response.context["late_post_mortems"] == []
    assert 'data-testid="late-post-mortems"' not in response.content.decode()


def test_the_dashboard_does_not_flag_a_post_mortem_still_in_time(client, post_mortem, approver):
    client.force_login(approver)

    response = client.get(reverse("reporting:dashboard"))

    assert response.context["late_post_mortems"] == []


def test_open_reviews_come_first_soonest_due_first(
    client, failed_review, post_mortem, owner, approver
):
    from changes.reviews.services import complete_review

    complete_review(
        review=failed_review,
        actor=owner,
        what_happened="It failed.",
        root_cause="A typo.",
    )
    later = ReviewOpening(
        kind="post_implementation",
        trigger="rolled_back",
        change=failed_review.change,
        service=failed_review.service,
        summary="Rolled back.",
        release_id=40_000,
        due_at=post_mortem.due_at + timedelta(days=3),
    )
    rolled_back, _ = open_review(opening=later, actor=None)
    client.force_login(approver)  # alice sees both services

    page = client.get(reverse("changes:review_list")).context["page"]

    assert [r.pk for r in page.object_list] == [post_mortem.pk, rolled_back.pk, failed_review.pk]
