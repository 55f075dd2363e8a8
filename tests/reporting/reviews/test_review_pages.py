"""The quarterly review's pages: who sees and does what, bad input, the CSV, query counts."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.urls import reverse

from governance.models import LedgerEntry
from reporting.reviews import services
from reporting.reviews.models import QuarterlyReview, QuarterlyReviewItem
from tests.reporting.reviews.conftest import REVIEW_DAY

pytestmark = pytest.mark.django_db
Kind = QuarterlyReviewItem.Kind
READERS = ["cab_member", "auditor", "administrator"]
OTHERS = ["approver", "release_manager", "security_approver", "outsider"]
SECRET = "CHG-E1"  # a title on the review: nobody refused may read it


@pytest.fixture
def review(quarter, administrator) -> QuarterlyReview:
    return services.start_quarterly_review(
        actor=administrator, quarter=date(2026, 7, 1), now=REVIEW_DAY
    )[0]


@pytest.fixture
def alices_emergency(review) -> QuarterlyReviewItem:
    return review.items.get(kind=Kind.EMERGENCY, involved_names="alice")


def urls(review, item) -> dict[str, str]:
    return {
        "list": reverse("reporting:quarterly_reviews"),
        "detail": reverse("reporting:quarterly_detail", args=[review.pk]),
        "export": reverse("reporting:quarterly_export", args=[review.pk]),
        "outcome": reverse("reporting:quarterly_outcome", args=[review.pk, item.pk]),
        "close": reverse("reporting:quarterly_close", args=[review.pk]),
    }


def state(review) -> list:
    items = list(review.items.order_by("pk").values_list("outcome", "note"))
    return [items, QuarterlyReview.objects.get(pk=review.pk).closed_at, LedgerEntry.objects.count()]


# --- Permission matrix ------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, review, alices_emergency):
    before = state(review)
    for name, url in urls(review, alices_emergency).items():
        response = client.post(url) if name in ("outcome", "close") else client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/accounts/login/")
    assert state(review) == before


@pytest.mark.parametrize("fixture", READERS)
def test_administrators_the_cab_and_auditors_read_the_review(
    client, request, fixture, review, alices_emergency
):
    client.force_login(request.getfixturevalue(fixture))
    pages = urls(review, alices_emergency)
    listing = client.get(pages["list"])
    assert listing.status_code == 200
    assert b"Quarterly review 2026 Q3" in listing.content
    detail = client.get(pages["detail"])
    assert detail.status_code == 200
    assert SECRET.encode() in detail.content
    assert detail.content.count(b'data-testid="item-row"') == 6
    export = client.get(pages["export"])
    assert export.status_code == 200 and export["Content-Type"] == "text/csv"


@pytest.mark.parametrize("fixture", OTHERS)
def test_everyone_else_gets_403_and_reads_nothing(
    client, request, fixture, review, alices_emergency
):
    client.force_login(request.getfixturevalue(fixture))
    before = state(review)
    for name, url in urls(review, alices_emergency).items():
        if name in ("outcome", "close"):
            response = client.post(url, {"outcome": "accepted", "note": "ok"})
        else:
            response = client.get(url)
        assert response.status_code == 403, name
        assert SECRET.encode() not in response.content
    assert client.post(urls(review, alices_emergency)["list"]).status_code == 403
    assert state(review) == before
    assert QuarterlyReview.objects.count() == 1


def test_the_start_button_is_for_administrators(client, review, cab_member, auditor, administrator):
    list_url = reverse("reporting:quarterly_reviews")
    for person in (cab_member, auditor):
        client.force_login(person)
        assert b'data-testid="start-review"' not in client.get(list_url).content
        assert client.post(list_url).status_code == 403
    assert QuarterlyReview.objects.count() == 1
    client.force_login(administrator)
    assert b'data-testid="start-review"' in client.get(list_url).content


def test_pressing_start_twice_opens_the_same_review(client, org, administrator):
    client.force_login(administrator)
    list_url = reverse("reporting:quarterly_reviews")
    first = client.post(list_url)
    second = client.post(list_url, follow=True)
    review = QuarterlyReview.objects.get()
    assert first["Location"] == reverse("reporting:quarterly_detail", args=[review.pk])
    assert b"Already started: Quarterly review" in second.content
    assert LedgerEntry.objects.filter(kind="quarterly_review.started").count() == 1


# --- Recording outcomes -----------------------------------------------------------------------


def test_a_cab_member_records_an_outcome_from_the_page(
    client, review, alices_emergency, cab_member
):
    client.force_login(cab_member)
    pages = urls(review, alices_emergency)
    response = client.post(
        f"{pages['outcome']}?kind=emergency", {"outcome": "control_changed", "note": "Paging"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{pages['detail']}?kind=emergency"
    alices_emergency.refresh_from_db()
    assert (alices_emergency.outcome, alices_emergency.decided_by) == (
        "control_changed",
        cab_member,
    )
    page = client.get(pages["detail"]).content.decode()
    assert "Control changed" in page and "Paging" in page


def test_a_missing_note_is_a_400_naming_the_item_and_nothing_is_written(
    client, review, alices_emergency, cab_member
):
    client.force_login(cab_member)
    before = state(review)
    response = client.post(urls(review, alices_emergency)["outcome"], {"outcome": "follow_up"})
    assert response.status_code == 400
    assert b"Say what follows up, or which control changed." in response.content
    assert b"Nothing was recorded." in response.content
    assert state(review) == before


def test_an_unknown_outcome_is_a_400(client, review, alices_emergency, cab_member):
    client.force_login(cab_member)
    before = state(review)
    response = client.post(urls(review, alices_emergency)["outcome"], {"outcome": "pending"})
    assert response.status_code == 400
    assert state(review) == before


def test_the_page_offers_no_form_on_ones_own_act_and_refuses_the_post(
    client, review, alices_emergency, administrator
):
    # ada asked for the freeze override: the page says so, and a forged POST is refused
    override = review.items.get(kind=Kind.FREEZE_OVERRIDE)
    client.force_login(administrator)
    page = client.get(urls(review, override)["detail"]).content.decode()
    row = page[page.index(f'data-item="{override.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Your own act" in row and "outcome-form" not in row
    before = state(review)
    response = client.post(urls(review, override)["outcome"], {"outcome": "accepted"})
    assert response.status_code == 403
    assert state(review) == before


def test_a_second_recording_is_a_409(client, review, alices_emergency, cab_member, administrator):
    services.record_outcome(item=alices_emergency, outcome="accepted", note="", actor=cab_member)
    client.force_login(administrator)
    before = state(review)
    response = client.post(urls(review, alices_emergency)["outcome"], {"outcome": "accepted"})
    assert response.status_code == 409
    assert b"carol already recorded" in response.content
    assert state(review) == before


# --- Closing ----------------------------------------------------------------------------------


def test_an_administrator_closes_the_review_naming_the_open_items(
    client, review, administrator, alices_emergency
):
    client.force_login(administrator)
    pages = urls(review, alices_emergency)
    assert client.post(pages["close"], {"note": ""}).status_code == 400
    assert QuarterlyReview.objects.get(pk=review.pk).closed_at is None
    response = client.post(pages["close"], {"note": "Year-end audit"}, follow=True)
    page = response.content.decode()
    assert "Closed with 6 items still open:" in page and "Year-end audit" in page
    assert 'data-testid="outcome-form"' not in page and 'data-testid="close-form"' not in page


# --- CSV and query counts ---------------------------------------------------------------------


def test_the_csv_has_one_line_per_item_with_the_outcome(
    client, review, alices_emergency, cab_member
):
    services.record_outcome(
        item=alices_emergency, outcome="follow_up", note="=cmd()", actor=cab_member
    )
    client.force_login(cab_member)
    body = client.get(urls(review, alices_emergency)["export"]).content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 6
    recorded = next(r for r in rows if r["outcome_code"] == "follow_up")
    assert recorded["title"] == "CHG-E2 · web-frontend"
    assert recorded["note"] == "'=cmd()"  # a spreadsheet shows it, never runs it
    assert recorded["decided_by"] == "carol"
    assert {r["kind_code"] for r in rows} == set(Kind.values)


# Session and user, the reader check (roles, administrator), the review, the count and page
# of items, the summary per kind and outcome, the navigation's roles.
REVIEW_PAGE_QUERIES = 9


def test_the_review_page_costs_the_same_queries_for_few_and_many_items(
    client, review, cab_member, django_assert_num_queries
):
    client.force_login(cab_member)
    url = reverse("reporting:quarterly_detail", args=[review.pk])
    with django_assert_num_queries(REVIEW_PAGE_QUERIES):
        assert client.get(url).status_code == 200
    template = review.items.get(kind=Kind.UNAPPROVED_DEPLOYMENT)
    for n in range(40):
        template.pk, template.source_id = None, 10_000 + n
        template.save()
    with django_assert_num_queries(REVIEW_PAGE_QUERIES):
        response = client.get(url)
    assert response.content.count(b'data-testid="item-row"') == 46


# Session and user, the reader check (administrator, roles), the count and the page of reviews
# with their item counts, the navigation's roles.
REVIEW_LIST_QUERIES = 7


def test_the_review_list_costs_the_same_queries_for_one_review_and_many(
    client, review, administrator, django_assert_num_queries
):
    client.force_login(administrator)
    url = reverse("reporting:quarterly_reviews")
    with django_assert_num_queries(REVIEW_LIST_QUERIES):
        assert client.get(url).status_code == 200
    for year in range(2015, 2026):
        QuarterlyReview.objects.create(quarter_start=date(year, 1, 1), due_at=REVIEW_DAY)
    with django_assert_num_queries(REVIEW_LIST_QUERIES):
        response = client.get(url)
    assert response.content.count(b'data-testid="review-row"') == 12
