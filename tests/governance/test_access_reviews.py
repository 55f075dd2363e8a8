"""Access reviews: findings on every grant, certification by owners and administrators, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from governance import reviews
from governance.exceptions import PermissionDenied
from governance.models import AccessReview, AccessReviewItem, LedgerEntry, Role, RoleAssignment
from governance.services import expire_role_grants
from governance.tasks import start_access_review_task
from tests import factories

pytestmark = pytest.mark.django_db


def item_for(review, user, role=Role.APPROVER, service=None):
    return review.items.get(user=user, role=role, service=service)


def codes(item) -> set[str]:
    return {f["code"] for f in item.findings}


def test_findings_cover_orphaned_unused_excessive_and_no_expiry(
    org, administrator, approver, second_approver, requester, service, production_release
):
    RoleAssignment.objects.filter(user=approver).update(
        granted_at=timezone.now() - timedelta(days=120)
    )
    RoleAssignment.objects.filter(user=second_approver).update(
        granted_at=timezone.now() - timedelta(days=120)
    )
    factories.decide(production_release, second_approver)  # bob exercised payments-api
    requester.is_active = False
    requester.save(update_fields=["is_active"])
    factories.grant(requester, Role.APPROVER, service)  # dave could request and approve

    review = reviews.start_access_review(actor=administrator)

    assert "unused" in codes(item_for(review, approver, service=service))
    assert "unused" not in codes(item_for(review, second_approver, service=service))
    dave = item_for(review, requester, service=service)
    assert {"orphaned", "excessive", "no_expiry"} <= codes(dave)
    assert "May both request and approve" in " ".join(f["text"] for f in dave.findings)
    assert review.items.count() == RoleAssignment.objects.count()
    assert LedgerEntry.objects.filter(kind="access_review.started").exists()


def test_a_grant_by_someone_no_longer_administrator_is_flagged(
    org, administrator, outsider, service
):
    former = factories.UserFactory(username="former")
    factories.grant(former, Role.ADMINISTRATOR)
    from governance.services import grant_role, revoke_role

    grant_role(user=outsider, role=Role.APPROVER, service=service, reason="x", actor=former)
    revoke_role(
        assignment=RoleAssignment.objects.get(user=former), reason="left", actor=administrator
    )
    review = reviews.start_access_review(actor=administrator)
    assert "grantor_not_admin" in codes(item_for(review, outsider, service=service))


def test_only_administrators_start_a_review(org, approver, client):
    with pytest.raises(PermissionDenied):
        reviews.start_access_review(actor=approver)
    client.force_login(approver)
    assert client.post(reverse("governance:access_review_list")).status_code == 403
    assert AccessReview.objects.count() == 0


def test_the_quarterly_task_opens_a_campaign(org):
    review = AccessReview.objects.get(pk=start_access_review_task())
    assert review.started_by is None and review.items.exists()


def test_revoking_takes_effect_at_once_and_keeping_records_why(
    org, administrator, approver, second_approver, service
):
    review = reviews.start_access_review(actor=administrator)
    revoked = reviews.certify(
        item=item_for(review, approver, service=service),
        outcome="revoke",
        reason="Moved teams",
        actor=administrator,
    )
    approver = type(approver).objects.get(pk=approver.pk)
    assert not approver.has_perm("governance.approve_release", service)
    assert (revoked.outcome, revoked.decided_by) == ("revoke", administrator)
    kept = reviews.certify(
        item=item_for(review, second_approver, service=service),
        outcome="keep",
        reason="Still on call",
        actor=administrator,
    )
    assert kept.outcome == "keep"
    assert LedgerEntry.objects.filter(kind="access_review.certified").count() == 2
    with pytest.raises(reviews.InvalidCertification, match="already"):
        reviews.certify(item=kept, outcome="revoke", reason="again", actor=administrator)


def test_service_owners_certify_their_services_only_and_never_themselves(
    org, administrator, approver, second_approver, service, low_tier_service
):
    service.owners.add(approver)
    review = reviews.start_access_review(actor=administrator)
    reviews.certify(
        item=item_for(review, second_approver, service=service),
        outcome="keep",
        reason="ok",
        actor=approver,
    )
    with pytest.raises(PermissionDenied):
        reviews.certify(
            item=item_for(review, second_approver, service=low_tier_service),
            outcome="keep",
            reason="ok",
            actor=approver,
        )
    with pytest.raises(PermissionDenied, match="own access"):
        reviews.certify(
            item=item_for(review, approver, service=service),
            outcome="keep",
            reason="mine",
            actor=approver,
        )


def test_certification_needs_a_reason_and_a_valid_outcome(org, administrator, approver, service):
    review = reviews.start_access_review(actor=administrator)
    item = item_for(review, approver, service=service)
    with pytest.raises(reviews.InvalidCertification):
        reviews.certify(item=item, outcome="keep", reason=" ", actor=administrator)
    with pytest.raises(reviews.InvalidCertification):
        reviews.certify(item=item, outcome="maybe", reason="x", actor=administrator)
    item.refresh_from_db()
    assert item.outcome == AccessReviewItem.Outcome.PENDING


@pytest.mark.parametrize(
    ("persona", "status"),
    [("anonymous", 302), ("outsider", 403), ("approver", 403), ("administrator", 200)],
)
def test_access_review_pages_permission_matrix(
    client, org, administrator, request, persona, status
):
    review = reviews.start_access_review(actor=administrator)
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    for url in (
        reverse("governance:access_review_list"),
        reverse("governance:access_review_detail", args=[review.pk]),
    ):
        assert client.get(url).status_code == status


def test_the_page_filters_by_finding_and_certifies(client, org, administrator, approver, service):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)
    url = reverse("governance:access_review_detail", args=[review.pk])
    page = client.get(url, {"finding": "no_expiry"})
    assert page.status_code == 200 and "alice" in page.content.decode()
    item = item_for(review, approver, service=service)
    client.post(
        reverse("governance:access_review_certify", args=[item.pk]),
        {"outcome": "revoke", "reason": "Left"},
    )
    item.refresh_from_db()
    assert item.outcome == "revoke"


def test_the_result_exports_as_csv(client, org, administrator, approver, service):
    review = reviews.start_access_review(actor=administrator)
    reviews.certify(
        item=item_for(review, approver, service=service),
        outcome="keep",
        reason="ok",
        actor=administrator,
    )
    client.force_login(administrator)
    response = client.get(reverse("governance:access_review_export", args=[review.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == reviews.CSV_HEADER
    alice = dict(
        zip(
            rows[0],
            next(r for r in rows if r[0] == "alice" and r[3] == "payments-api"),
            strict=True,
        )
    )
    assert (alice["role"], alice["outcome"], alice["decided_by"], alice["reason"]) == (
        "Approver",
        "Kept",
        "ada",
        "ok",
    )
    assert alice["findings"] == "No expiry: The grant never expires."
    # The codes behind the words, for scripts.
    assert (alice["role_code"], alice["finding_codes"], alice["outcome_code"]) == (
        "approver",
        "no_expiry",
        "keep",
    )
    assert len(rows) == review.items.count() + 1


def test_expired_grants_are_revoked_by_the_sweep(org, approver, service):
    RoleAssignment.objects.filter(user=approver, service=service).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert expire_role_grants() == 1
    approver = type(approver).objects.get(pk=approver.pk)
    assert not approver.has_perm("governance.approve_release", service)
    assert LedgerEntry.objects.filter(kind="role.revoked", payload__reason="Grant expired").exists()


def test_nobody_is_offered_to_certify_their_own_access(client, org, administrator):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)
    body = client.get(
        reverse("governance:access_review_detail", args=[review.pk]), {"finding": "no_expiry"}
    ).content.decode()
    assert "Someone else certifies your own access." in body
    own = item_for(review, administrator, role=Role.ADMINISTRATOR)
    assert f"/items/{own.pk}/certify/" not in body


def test_review_page_query_count_does_not_grow_with_rows(client, org, administrator, service):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    small = reviews.start_access_review(actor=administrator)
    for index in range(15):
        factories.grant(factories.UserFactory(username=f"extra{index}"), Role.APPROVER, service)
    large = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)
    counts = []
    for review in (small, large):
        with CaptureQueriesContext(connection) as queries:
            client.get(reverse("governance:access_review_detail", args=[review.pk]))
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- Findings in words -------------------------------------------------------------------------


def test_findings_show_words_not_codes(client, org, administrator, approver, service):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)

    body = client.get(reverse("governance:access_review_detail", args=[review.pk])).content.decode()

    assert '">No expiry</span> The grant never expires.' in body
    assert ">no_expiry<" not in body
    assert '<option value="grantor_not_admin" >Grantor no longer an administrator</option>' in body


def test_a_finding_code_no_longer_known_still_reads_as_words(org, administrator, approver):
    review = reviews.start_access_review(actor=administrator)
    item = review.items.first()
    item.findings = [{"code": "shared_account", "text": "Used by several people."}]

    assert item.labelled_findings == [
        {"code": "shared_account", "label": "Shared account", "text": "Used by several people."}
    ]
