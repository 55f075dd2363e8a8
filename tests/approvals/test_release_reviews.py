"""The release page shows the reviews Signoff opened about the release."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals import services
from changes.models import Review

pytestmark = pytest.mark.django_db


def test_an_unapproved_deployment_s_review_is_on_the_release_page(
    client, production_release, pipeline_bot, approver
):
    services.record_deployment(release=production_release, actor=pipeline_bot, status="succeeded")
    review = Review.objects.get(release_id=production_release.pk)
    client.force_login(approver)

    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))

    body = page.content.decode()
    assert review.trigger == "unapproved_deployment"
    assert 'data-testid="release-reviews"' in body
    assert reverse("changes:review_detail", args=[review.pk]) in body


def test_a_release_without_reviews_says_when_one_would_open(client, production_release, approver):
    client.force_login(approver)

    body = client.get(
        reverse("approvals:release_detail", args=[production_release.pk])
    ).content.decode()

    assert "No review of this release" in body
