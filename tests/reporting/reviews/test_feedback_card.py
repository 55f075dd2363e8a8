"""The feedback card on the release page: loaded by htmx for the requester of an ended request."""

from __future__ import annotations

import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from governance.models import LedgerEntry
from reporting.reviews.models import WorkflowFeedback
from tests import factories

pytestmark = pytest.mark.django_db
SLOT = b'data-testid="feedback-slot"'


@pytest.fixture
def ended(production_release, approver):
    """dave's production release, rejected at its service stage."""
    factories.decide(production_release, approver, "reject", "No rollback plan.")
    return production_release


def card_url(release) -> str:
    return reverse("reporting:release_workflow_feedback", args=[release.pk])


def page_of(client, release) -> bytes:
    return client.get(reverse("approvals:release_detail", args=[release.pk])).content


def test_the_release_page_loads_the_card_for_its_requester_once_ended(client, ended, requester):
    client.force_login(requester)
    page = page_of(client, ended)
    assert SLOT in page
    assert f'hx-get="{card_url(ended)}" hx-trigger="load"'.encode() in page


def test_no_card_while_the_request_is_pending(client, production_release, requester):
    client.force_login(requester)
    assert SLOT not in page_of(client, production_release)
    assert client.get(card_url(production_release)).status_code == 403


@pytest.mark.parametrize("fixture", ["approver", "cab_member", "auditor", "administrator"])
def test_no_card_for_anyone_else(client, ended, request, fixture):
    client.force_login(request.getfixturevalue(fixture))
    assert SLOT not in page_of(client, ended)
    response = client.get(card_url(ended))
    assert response.status_code == 403
    assert b"How was this approval workflow?" not in response.content
    assert client.post(card_url(ended), {"rating": "noise"}).status_code == 403
    assert not WorkflowFeedback.objects.exists()


def test_a_release_out_of_scope_is_404(client, ended, outsider):
    client.force_login(outsider)
    assert client.get(card_url(ended)).status_code == 404
    assert client.post(card_url(ended), {"rating": "noise"}).status_code == 404
    assert not WorkflowFeedback.objects.exists()


def test_anonymous_visitors_sign_in_first(client, ended):
    response = client.post(card_url(ended), {"rating": "noise"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not WorkflowFeedback.objects.exists()


def test_the_requester_rates_from_the_card_and_sees_it_afterwards(client, ended, requester):
    client.force_login(requester)
    form = client.get(card_url(ended))
    assert form.status_code == 200 and b"Send rating" in form.content
    saved = client.post(card_url(ended), {"rating": "useful", "comment": "Caught it"})
    assert saved.status_code == 200
    assert b"Thank you: your rating is recorded." in saved.content
    assert b"You rated it <strong>useful</strong>" in saved.content
    feedback = WorkflowFeedback.objects.get(release=ended)
    assert (feedback.rating, feedback.comment, feedback.rated_by) == (
        "useful",
        "Caught it",
        requester,
    )
    again = client.get(card_url(ended))
    assert b"Change rating" in again.content
    assert re.search(rb'value="useful"[^>]*checked', again.content)  # the current rating chosen


def test_a_rating_without_a_choice_is_refused_with_the_reason(client, ended, requester):
    client.force_login(requester)
    before = LedgerEntry.objects.count()
    response = client.post(card_url(ended), {"rating": "", "comment": "hm"})
    assert response.status_code == 422
    assert b"This field is required." in response.content
    assert not WorkflowFeedback.objects.exists()
    assert LedgerEntry.objects.count() == before


# Session and user, the viewer's scope (global permissions, guardian's content type), the
# release with its request, the rating so far.
CARD_QUERIES = 6


def test_the_card_costs_a_few_queries(client, ended, requester, django_assert_num_queries):
    client.force_login(requester)
    ContentType.objects.clear_cache()  # as in a fresh process: guardian reads it once
    with django_assert_num_queries(CARD_QUERIES):
        assert client.get(card_url(ended)).status_code == 200
