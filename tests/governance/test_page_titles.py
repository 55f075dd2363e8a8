"""Each page's <title> says which page it is: the first thing a screen reader announces, and what
a tab or the browser history shows. Catalogue pages used to share one title per section."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from governance.authority import reviews

pytestmark = pytest.mark.django_db


def title_of(client, url: str) -> str:
    page = client.get(url).content.decode()
    return re.search(r"<title>(.*?)</title>", page).group(1)


def test_catalogue_titles_name_the_section_and_the_entry(client, org, service, administrator):
    client.force_login(administrator)

    assert title_of(client, reverse("governance:catalogue_list", args=["services"])) == (
        "Services · Catalogue · Signoff"
    )
    assert title_of(
        client, reverse("governance:catalogue_edit", args=["services", service.pk])
    ) == ("Edit service payments-api · Catalogue · Signoff")
    assert title_of(client, reverse("governance:catalogue_add", args=["teams"])) == (
        "New team · Catalogue · Signoff"
    )


def test_a_person_is_edited_as_a_person(client, org, approver, administrator):
    client.force_login(administrator)

    url = reverse("governance:catalogue_edit", args=["people", approver.pk])

    assert title_of(client, url) == f"Edit person {approver} · Catalogue · Signoff"


def test_an_access_review_title_names_the_review(client, org, administrator):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)

    url = reverse("governance:access_review_detail", args=[review.pk])

    assert title_of(client, url) == f"{review.name} · Access reviews · Signoff"
