"""Delegation during absence: who may act for whom, and segregation of duties through it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.exceptions import NotEligible, SelfApprovalForbidden
from approvals.models import Decision
from governance.authority.services import create_delegation, revoke_delegation
from governance.exceptions import InvalidDelegation
from governance.models import Delegation, LedgerEntry, Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def frank(db):
    """A colleague with no approval role of his own."""
    return factories.UserFactory(username="frank", first_name="Frank")


def delegate(delegator, to, *, service=None, hours=(-1, 48), reason="annual leave"):
    now = timezone.now()
    return create_delegation(
        delegator=delegator,
        delegate=to,
        service=service,
        reason=reason,
        actor=delegator,
        starts_at=now + timedelta(hours=hours[0]),
        ends_at=now + timedelta(hours=hours[1]),
    )


def test_a_delegate_approves_on_behalf_and_the_record_names_both(
    client, production_release, approver, frank
):
    delegate(approver, frank)
    client.force_login(frank)
    queue = client.get(reverse("approvals:queue")).content.decode()
    assert production_release.version in queue and "delegated to you" in queue

    decision = factories.decide(production_release, frank)

    assert (decision.approver, decision.on_behalf_of) == (frank, approver)
    entry = LedgerEntry.objects.filter(kind="decision.recorded").get()
    assert (entry.actor, entry.payload["on_behalf_of"]) == ("frank", "alice")
    page = client.get(reverse("approvals:release_detail", args=[production_release.pk]))
    assert "Frank</strong> for Alice" in page.content.decode()


def test_the_delegator_cannot_fill_the_seat_a_second_time(production_release, approver, frank):
    delegate(approver, frank)
    factories.decide(production_release, frank)
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, approver)


def test_a_delegate_who_decided_for_himself_cannot_decide_again_for_someone_else(
    production_release, approver, second_approver
):
    delegate(approver, second_approver)
    factories.decide(production_release, second_approver)  # as himself
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, second_approver)


def test_a_delegation_never_lets_the_requester_approve_his_own_release(
    production_release, approver, requester
):
    delegate(approver, requester)
    with factories.nothing_changes(production_release), pytest.raises(SelfApprovalForbidden):
        factories.decide(production_release, requester)


def test_delegations_do_not_chain(production_release, approver, second_approver, outsider):
    delegate(approver, second_approver)  # alice → bob
    delegate(second_approver, outsider, hours=(0, 24))  # bob → mallory: only bob's own authority
    assert factories.decide(production_release, outsider).on_behalf_of == second_approver
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, outsider)  # never alice's seat through bob


def test_someone_without_authority_has_nothing_to_delegate(org, frank, outsider):
    with pytest.raises(InvalidDelegation, match="no approval authority to delegate"):
        delegate(outsider, frank)


def test_dual_control_counts_a_delegate_once_per_request(
    production_release, approver, second_approver, cab_member
):
    factories.decide(production_release, approver)
    factories.decide(production_release, second_approver)  # service stage done; CAB is next
    delegate(cab_member, second_approver)
    with factories.nothing_changes(production_release), pytest.raises(NotEligible, match="Dual"):
        factories.decide(production_release, second_approver)


@pytest.mark.parametrize("change", ["revoked", "ended", "not_started", "delegator_deactivated"])
def test_a_delegation_not_in_force_gives_nothing(production_release, approver, frank, change):
    delegation = delegate(approver, frank, hours=(24, 48) if change == "not_started" else (-1, 48))
    if change == "revoked":
        revoke_delegation(delegation=delegation, actor=approver)
    elif change == "ended":
        Delegation.objects.filter(pk=delegation.pk).update(
            starts_at=timezone.now() - timedelta(days=3), ends_at=timezone.now() - timedelta(days=1)
        )
    elif change == "delegator_deactivated":
        approver.is_active = False
        approver.save(update_fields=["is_active"])
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, frank)


def test_a_scoped_delegation_covers_only_its_service(
    org, production_release, approver, frank, low_tier_service
):
    delegate(approver, frank, service=low_tier_service)
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, frank)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": (-48, -1)}, "already over"),
        ({"hours": (5, 1)}, "must end after it starts"),
        ({"reason": "  "}, "reason is required"),
    ],
)
def test_bad_delegations_are_refused_and_nothing_is_written(approver, frank, kwargs, message):
    before = (Delegation.objects.count(), LedgerEntry.objects.count())
    with pytest.raises(InvalidDelegation, match=message):
        delegate(approver, frank, **kwargs)
    assert (Delegation.objects.count(), LedgerEntry.objects.count()) == before


def test_an_overlapping_delegation_is_refused(approver, frank, second_approver):
    delegate(approver, frank)
    with pytest.raises(InvalidDelegation, match="overlaps your delegation to frank"):
        delegate(approver, second_approver, hours=(10, 20))


def test_nobody_delegates_to_someone_who_is_away_too(approver, second_approver, frank):
    delegate(second_approver, frank)
    with pytest.raises(InvalidDelegation, match="do not chain"):
        delegate(approver, second_approver)


def test_service_accounts_and_oneself_cannot_be_delegates(approver, pipeline_bot):
    with pytest.raises(InvalidDelegation, match="only active people"):
        delegate(approver, pipeline_bot)
    with pytest.raises(InvalidDelegation, match="themselves"):
        delegate(approver, approver)


def test_a_service_scope_must_be_within_the_delegators_authority(org, frank, outsider, service):
    with pytest.raises(InvalidDelegation, match="no approval authority on payments-api"):
        delegate(outsider, frank, service=service)


def test_the_delegations_page_creates_and_ends_a_delegation(client, org, approver, frank):
    client.force_login(approver)
    url = reverse("governance:delegation_list")
    assert client.get(url).status_code == 200
    start = timezone.localtime(timezone.now()).strftime("%Y-%m-%dT%H:%M")
    end = (timezone.localtime(timezone.now()) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        url,
        {
            "delegate": frank.pk,
            "service": "",
            "starts_at": start,
            "ends_at": end,
            "reason": "Conference",
        },
    )
    assert response.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.delegator, delegation.delegate, delegation.reason) == (
        approver,
        frank,
        "Conference",
    )

    client.force_login(frank)  # only the delegator may end it
    revoke = reverse("governance:delegation_revoke", args=[delegation.pk])
    assert client.post(revoke).status_code == 404
    client.force_login(approver)
    assert client.post(revoke).status_code == 302
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None


def test_the_delegations_page_shows_why_a_delegation_is_refused(client, org, approver):
    client.force_login(approver)
    now = timezone.localtime(timezone.now())
    response = client.post(
        reverse("governance:delegation_list"),
        {
            "delegate": approver.pk,
            "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "x",
        },
    )
    assert response.status_code == 400
    assert Delegation.objects.count() == 0


def test_delegations_page_needs_sign_in(client):
    response = client.get(reverse("governance:delegation_list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_queue_query_count_is_unchanged_by_delegations(
    client, org, approver, frank, service, production, pipeline_bot
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from approvals import services

    delegate(approver, frank)
    client.force_login(frank)
    services.request_approval(data=factories.release_input(service, production), actor=pipeline_bot)
    client.get(reverse("approvals:queue"))  # the first request fills per-process caches
    with CaptureQueriesContext(connection) as one:
        client.get(reverse("approvals:queue"))
    for _ in range(5):
        services.request_approval(
            data=factories.release_input(service, production), actor=pipeline_bot
        )
    with CaptureQueriesContext(connection) as many:
        body = client.get(reverse("approvals:queue")).content.decode()
    assert body.count("delegated to you") == 2 * 6  # the table, and the cards phones get
    assert len(one) == len(many)
    assert Decision.objects.count() == 0


def test_an_administrator_delegates_for_someone_who_is_away(client, org, approver, frank):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    client.force_login(admin)
    now = timezone.localtime(timezone.now())
    response = client.post(
        reverse("governance:delegation_list"),
        {
            "delegator": approver.pk,
            "delegate": frank.pk,
            "service": "",
            "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "Sick leave",
        },
    )
    assert response.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.delegator, delegation.delegate, delegation.created_by) == (
        approver,
        frank,
        admin,
    )
    assert LedgerEntry.objects.filter(kind="delegation.created", actor="ada").exists()


def test_people_can_only_delegate_their_own_authority(
    client, org, approver, second_approver, frank
):
    client.force_login(approver)
    now = timezone.localtime(timezone.now())
    client.post(
        reverse("governance:delegation_list"),
        {
            "delegator": second_approver.pk,
            "delegate": frank.pk,
            "service": "",
            "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "x",
        },
    )
    assert Delegation.objects.get().delegator == approver  # the extra field is ignored


def test_the_delegate_of_the_requester_cannot_approve_the_requesters_release(
    production_release, requester, frank, service
):
    factories.grant(requester, Role.APPROVER, service)  # dave approves others' releases
    delegate(requester, frank)
    with factories.nothing_changes(production_release), pytest.raises(NotEligible):
        factories.decide(production_release, frank)


# --- Auditors are independent; nobody delegates to themselves -----------------------------------


def arrange(actor, delegator, to, *, hours=(-1, 48)):
    now = timezone.now()
    return create_delegation(
        delegator=delegator,
        delegate=to,
        service=None,
        reason="Sick leave",
        actor=actor,
        starts_at=now + timedelta(hours=hours[0]),
        ends_at=now + timedelta(hours=hours[1]),
    )


def test_an_auditor_cannot_be_made_a_delegate(org, approver, auditor, administrator):
    counts = factories.state_counts()
    with pytest.raises(InvalidDelegation, match="auditor role"):
        arrange(administrator, approver, auditor)
    with pytest.raises(InvalidDelegation, match="auditor role"):
        delegate(approver, auditor)
    assert Delegation.objects.count() == 0
    assert factories.state_counts() == counts


def test_a_delegate_who_later_becomes_an_auditor_no_longer_counts(
    client, production_release, approver, frank
):
    delegate(approver, frank)
    factories.grant(frank, Role.AUDITOR)

    with factories.nothing_changes(production_release), pytest.raises(NotEligible, match="audit"):
        factories.decide(production_release, frank)
    client.force_login(frank)
    queue = client.get(reverse("approvals:queue")).content.decode()
    assert production_release.version not in queue


def test_an_auditor_never_decides_even_with_an_approver_grant(production_release, auditor, service):
    factories.grant(auditor, Role.APPROVER, service)  # e.g. through an identity-group mapping

    with factories.nothing_changes(production_release), pytest.raises(NotEligible, match="audit"):
        factories.decide(production_release, auditor)


def test_auditors_are_not_offered_as_eligible_approvers(production_release, auditor, service):
    from approvals.services import reresolve_open_stages

    factories.grant(auditor, Role.APPROVER, service)
    reresolve_open_stages()

    stage = production_release.approval.stages.get(position=1)
    assert auditor not in stage.eligible_approvers.all()


def test_administrators_cannot_give_an_auditor_approval_roles_or_an_approver_the_auditor_role(
    org, auditor, approver, administrator, service
):
    from governance.authority.services import grant_role
    from governance.exceptions import PermissionDenied

    counts = factories.state_counts()
    with pytest.raises(PermissionDenied, match="auditor role"):
        grant_role(
            user=auditor, role=Role.APPROVER, service=service, reason="x", actor=administrator
        )
    with pytest.raises(PermissionDenied, match="Approver"):
        grant_role(user=approver, role=Role.AUDITOR, service=None, reason="x", actor=administrator)
    assert factories.state_counts() == counts


def test_the_delegation_form_offers_neither_auditors_nor_service_accounts_nor_oneself(
    client, org, approver, auditor, pipeline_bot, administrator, frank
):
    for person in (approver, administrator):
        client.force_login(person)
        page = client.get(reverse("governance:delegation_list"))
        offered = set(page.context["form"].fields["delegate"].queryset)
        assert frank in offered
        assert not offered & {auditor, pipeline_bot, person}


def test_an_administrator_cannot_arrange_a_delegation_to_themselves(
    client, org, approver, administrator
):
    counts = factories.state_counts()
    with pytest.raises(InvalidDelegation, match="cannot be its delegate"):
        arrange(administrator, approver, administrator)

    client.force_login(administrator)
    now = timezone.localtime(timezone.now())
    response = client.post(
        reverse("governance:delegation_list"),
        {
            "delegator": approver.pk,
            "delegate": administrator.pk,
            "service": "",
            "starts_at": now.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "Sick leave",
        },
    )
    assert response.status_code == 400
    assert Delegation.objects.count() == 0
    assert factories.state_counts() == counts


def test_a_delegation_its_own_delegate_set_up_never_counts(
    api, production_release, approver, administrator
):
    # A row written before this rule, or by hand in the database: it still gives nothing.
    now = timezone.now()
    Delegation.objects.create(
        delegator=approver,
        delegate=administrator,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="covering",
        created_by=administrator,
    )
    with factories.nothing_changes(production_release):
        response = api(administrator).post(
            f"/api/v1/releases/{production_release.pk}/decisions/",
            {"decision": "approve", "rationale": "ok", "digest": production_release.digest},
        )
    assert response.status_code == 403


def test_only_administrators_arrange_delegations_for_someone_else(
    org, approver, second_approver, frank
):
    from governance.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        arrange(second_approver, approver, frank)
    assert Delegation.objects.count() == 0


def test_the_delegator_is_told_when_an_administrator_arranges_their_delegation(
    org, approver, administrator, frank
):
    from governance.models import Notification

    delegation = arrange(administrator, approver, frank)

    note = Notification.objects.get(recipient=approver)
    assert "delegated to Frank" in note.subject
    assert "Ada" in note.body and "Sick leave" in note.body
    entry = LedgerEntry.objects.get(kind="delegation.created")
    assert (entry.actor, entry.payload["set_up_by"], entry.payload["delegator"]) == (
        "ada",
        "ada",
        "alice",
    )
    assert delegation.created_by == administrator


def test_nobody_is_told_when_people_delegate_their_own_authority(org, approver, frank):
    from governance.models import Notification

    delegate(approver, frank)
    assert not Notification.objects.filter(recipient=approver).exists()
