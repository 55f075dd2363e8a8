"""Access reviews: findings on every grant, certification by owners and administrators, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from governance.authority import reviews
from governance.authority.services import expire_role_grants, revoke_role
from governance.exceptions import PermissionDenied
from governance.models import AccessReview, AccessReviewItem, LedgerEntry, Role, RoleAssignment
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
    from governance.authority.services import grant_role, revoke_role

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
        reverse("governance:access_review_certify_many", args=[review.pk]),
        {"items": [item.pk], "outcome": "revoke", "reason": "Left"},
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


def test_nobody_is_offered_to_certify_their_own_access(
    client, org, administrator, approver, service
):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)
    body = client.get(
        reverse("governance:access_review_detail", args=[review.pk]), {"finding": "no_expiry"}
    ).content.decode()
    assert "Someone else certifies your own access." in body
    own = item_for(review, administrator, role=Role.ADMINISTRATOR)
    assert f'name="items" value="{own.pk}"' not in body
    other = item_for(review, approver, service=service)
    assert f'name="items" value="{other.pk}"' in body


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


# --- Findings in words; several grants certified with one reason -------------------------------


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


def certify_url(review, **query) -> str:
    url = reverse("governance:access_review_certify_many", args=[review.pk])
    return f"{url}?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else url


def certifications() -> list[tuple]:
    """Everything a certification changes: outcomes, role grants and the ledger."""
    return [
        list(AccessReviewItem.objects.order_by("pk").values_list("outcome", "reason")),
        list(RoleAssignment.objects.order_by("pk").values_list("pk", flat=True)),
        LedgerEntry.objects.count(),
    ]


def test_several_grants_are_kept_with_one_reason(
    client, org, administrator, approver, second_approver, service, low_tier_service
):
    review = reviews.start_access_review(actor=administrator)
    chosen = [
        item_for(review, approver, service=service),
        item_for(review, approver, service=low_tier_service),
        item_for(review, second_approver, service=service),
    ]
    client.force_login(administrator)

    response = client.post(
        certify_url(review, finding="no_expiry", page=1),
        {"items": [item.pk for item in chosen], "outcome": "keep", "reason": " Still on call "},
        follow=True,
    )

    assert response.redirect_chain == [
        (
            reverse("governance:access_review_detail", args=[review.pk])
            + "?finding=no_expiry&page=1",
            302,
        )
    ]
    assert "Kept 3 grants." in response.content.decode()
    for item in chosen:
        item.refresh_from_db()
        assert (item.outcome, item.reason, item.decided_by) == (
            "keep",
            "Still on call",
            administrator,
        )
    entries = LedgerEntry.objects.filter(kind="access_review.certified").order_by("seq")
    assert [(e.actor, e.payload["user"], e.payload["scope"]) for e in entries] == [
        ("ada", item.user.username, item.scope_label) for item in sorted(chosen, key=lambda i: i.pk)
    ]
    assert {e.payload["reason"] for e in entries} == {"Still on call"}
    assert review.items.filter(outcome="pending").count() == review.items.count() - 3


def test_several_grants_are_revoked_at_once(
    client, org, administrator, approver, second_approver, service
):
    review = reviews.start_access_review(actor=administrator)
    chosen = [
        item_for(review, approver, service=service),
        item_for(review, second_approver, service=service),
    ]
    client.force_login(administrator)

    response = client.post(
        certify_url(review),
        {"items": [item.pk for item in chosen], "outcome": "revoke", "reason": "Team disbanded"},
    )

    assert response.status_code == 302
    assert not RoleAssignment.objects.filter(
        user__in=[approver, second_approver], service=service
    ).exists()
    revoked = LedgerEntry.objects.filter(kind="role.revoked")
    assert sorted(e.payload["user"] for e in revoked) == ["alice", "bob"]
    assert {e.payload["reason"] for e in revoked} == {f"{review.name}: Team disbanded"}
    assert LedgerEntry.objects.filter(kind="access_review.certified").count() == 2
    assert set(
        review.items.filter(pk__in=[i.pk for i in chosen]).values_list("outcome", flat=True)
    ) == {"revoke"}


def test_a_batch_with_ones_own_access_is_refused_whole(
    client, org, administrator, approver, service
):
    review = reviews.start_access_review(actor=administrator)
    own = item_for(review, administrator, role=Role.ADMINISTRATOR)
    other = item_for(review, approver, service=service)
    client.force_login(administrator)
    before = certifications()

    response = client.post(
        certify_url(review),
        {"items": [other.pk, own.pk], "outcome": "revoke", "reason": "Tidy up"},
        follow=True,
    )

    assert (
        "Nobody certifies their own access: ada (Administrator, all services). "
        "Nothing was recorded." in response.content.decode()
    )
    assert certifications() == before


def test_an_owner_cannot_slip_in_a_grant_on_another_service(
    client, org, administrator, approver, second_approver, service, low_tier_service
):
    service.owners.add(approver)
    review = reviews.start_access_review(actor=administrator)
    mine = item_for(review, second_approver, service=service)
    theirs = item_for(review, second_approver, service=low_tier_service)
    client.force_login(approver)
    before = certifications()

    response = client.post(
        certify_url(review),
        {"items": [mine.pk, theirs.pk], "outcome": "keep", "reason": "ok"},
        follow=True,
    )

    body = response.content.decode()
    assert "A selected grant is not one you can see in this review. Nothing was recorded." in body
    assert certifications() == before
    # The service refuses the same batch with the grant named, whatever path it comes by.
    with pytest.raises(PermissionDenied) as refused:
        reviews.certify_many(items=[mine, theirs], outcome="keep", reason="ok", actor=approver)
    assert refused.value.message == (
        "Only an administrator, or an owner of the service, certifies a grant: "
        "bob (Approver, web-frontend). Nothing was recorded."
    )
    assert certifications() == before


def test_a_batch_with_a_grant_already_certified_changes_nothing(
    org, administrator, approver, second_approver, service
):
    review = reviews.start_access_review(actor=administrator)
    done = item_for(review, approver, service=service)
    reviews.certify(item=done, outcome="keep", reason="ok", actor=administrator)
    fresh = item_for(review, second_approver, service=service)
    before = certifications()

    with pytest.raises(reviews.InvalidCertification) as refused:
        reviews.certify_many(
            items=[fresh, done], outcome="revoke", reason="Again", actor=administrator
        )

    assert refused.value.message == (
        "This grant has already been certified: alice (Approver, payments-api). "
        "Nothing was recorded."
    )
    assert certifications() == before


def test_a_failure_midway_leaves_no_grant_certified(
    org, administrator, approver, second_approver, service, monkeypatch
):
    review = reviews.start_access_review(actor=administrator)
    chosen = [
        item_for(review, approver, service=service),
        item_for(review, second_approver, service=service),
    ]
    before = certifications()
    calls = []

    def revoke_then_fail(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return revoke_role(**kwargs)

    monkeypatch.setattr(reviews, "revoke_role", revoke_then_fail)

    with pytest.raises(RuntimeError):
        reviews.certify_many(items=chosen, outcome="revoke", reason="x", actor=administrator)

    assert len(calls) == 2
    assert certifications() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"outcome": "keep", "reason": "ok"}, "Select at least one grant."),
        ({"items": ["abc"], "outcome": "keep", "reason": "ok"}, "A selected grant is not one you"),
        ({"items": [999999], "outcome": "keep", "reason": "ok"}, "A selected grant is not one you"),
        ({"items": "ITEM", "outcome": "keep", "reason": " "}, "A reason is required."),
        ({"items": "ITEM", "outcome": "maybe", "reason": "ok"}, "Choose keep or revoke."),
        ({"items": "ITEM", "reason": "ok"}, "Choose keep or revoke."),
        ({"items": "ITEM", "outcome": "keep", "reason": "x" * 501}, "at most 500 characters"),
        ({"items": "OTHER_REVIEW", "outcome": "keep", "reason": "ok"}, "A selected grant is not"),
    ],
    ids=["none", "junk", "unknown", "no-reason", "bad-outcome", "no-outcome", "long", "elsewhere"],
)
def test_bad_certification_input_is_a_clear_error_and_changes_nothing(
    client, org, administrator, approver, service, data, message
):
    review = reviews.start_access_review(actor=administrator)
    other_review = reviews.start_access_review(actor=administrator)
    stand_ins = {
        "ITEM": [item_for(review, approver, service=service).pk],
        "OTHER_REVIEW": [item_for(other_review, approver, service=service).pk],
    }
    data = {
        key: stand_ins.get(value, value) if isinstance(value, str) else value
        for key, value in data.items()
    }
    client.force_login(administrator)
    before = certifications()

    response = client.post(certify_url(review), data, follow=True)

    assert response.status_code == 200
    body = response.content.decode()
    assert message in body and "Nothing was recorded." in body
    assert "alert-danger" in body  # shown as an error, not a neutral note
    assert certifications() == before


def test_a_batch_is_bounded(org, administrator, approver, second_approver, service, monkeypatch):
    monkeypatch.setattr(reviews, "CERTIFY_BATCH_LIMIT", 1)
    review = reviews.start_access_review(actor=administrator)
    chosen = [
        item_for(review, approver, service=service),
        item_for(review, second_approver, service=service),
    ]

    with pytest.raises(reviews.InvalidCertification, match="at most 1 grants at a time"):
        reviews.certify_many(items=chosen, outcome="keep", reason="ok", actor=administrator)


def test_the_page_offers_select_all_and_one_reason(client, org, administrator, approver, service):
    review = reviews.start_access_review(actor=administrator)
    client.force_login(administrator)

    body = client.get(reverse("governance:access_review_detail", args=[review.pk])).content.decode()

    assert "data-select-all" in body
    assert f'action="{certify_url(review)}"' in body
    assert body.count('name="reason"') == 1
    assert 'src="/static/js/bulk-select.js"' in body


@pytest.mark.parametrize(
    ("persona", "status", "kept"),
    [
        ("anonymous", 302, 0),  # to the sign-in page
        ("outsider", 403, 0),
        ("approver", 403, 0),  # approves, owns nothing
        ("auditor", 403, 0),
        ("service_owner", 302, 1),
        ("administrator", 302, 1),
    ],
)
def test_certify_selected_permission_matrix(
    client, org, administrator, second_approver, service, request, persona, status, kept
):
    owner = factories.UserFactory(username="olga")
    service.owners.add(owner)
    review = reviews.start_access_review(actor=administrator)
    item = item_for(review, second_approver, service=service)
    if persona == "service_owner":
        client.force_login(owner)
    elif persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    before = LedgerEntry.objects.count()

    response = client.post(
        certify_url(review), {"items": [item.pk], "outcome": "keep", "reason": "Still needed"}
    )

    assert response.status_code == status
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("login"))
    assert review.items.filter(outcome="keep").count() == kept
    assert LedgerEntry.objects.count() == before + kept


def test_the_export_is_for_the_pages_audience_with_the_grants_the_page_shows_them(
    client, org, administrator, approver, cab_member, pipeline_bot, service
):
    """CAB members, security approvers and pipelines read every release, never everyone's
    grants; a service's owner exports the grants on their services only."""
    security = factories.UserFactory(username="sam")
    factories.grant(security, Role.SECURITY_APPROVER)
    review = reviews.start_access_review(actor=administrator)
    url = reverse("governance:access_review_export", args=[review.pk])
    for person in (cab_member, pipeline_bot, security):
        client.force_login(person)
        assert client.get(url).status_code == 403
    service.owners.add(approver)
    client.force_login(approver)
    rows = list(csv.reader(io.StringIO(b"".join(client.get(url).streaming_content).decode())))
    assert {row[3] for row in rows[1:]} == {"payments-api"}
    assert len(rows) - 1 == review.items.filter(service=service).count() > 0
