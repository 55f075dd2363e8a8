"""Navigation follows the person's roles, and error pages keep the layout and say what next."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.views.defaults import server_error

from governance.models import RoleAssignment

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("persona", "offered"), [("approver", True), ("requester", True), ("auditor", False)]
)
def test_only_people_who_may_decide_are_offered_the_queue_and_delegations(
    client, org, request, persona, offered
):
    client.force_login(request.getfixturevalue(persona))

    page = client.get(reverse("reporting:dashboard")).content.decode()

    assert (f'href="{reverse("approvals:queue")}"' in page) is offered
    assert (f'href="{reverse("governance:delegation_list")}"' in page) is offered


@pytest.mark.parametrize(
    ("persona", "offered"),
    [("cab_member", True), ("administrator", True), ("approver", False), ("auditor", False)],
)
def test_the_cab_queue_is_offered_to_its_members_and_administrators(
    client, org, request, persona, offered
):
    person = request.getfixturevalue(persona)
    person.is_staff = persona == "administrator"
    person.save(update_fields=["is_staff"])
    client.force_login(person)

    page = client.get(reverse("reporting:dashboard")).content.decode()

    assert (f'href="{reverse("cab:queue")}"' in page) is offered


def test_a_cab_grant_past_its_expiry_no_longer_offers_the_cab(client, org, cab_member):
    RoleAssignment.objects.filter(user=cab_member).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    client.force_login(cab_member)

    page = client.get(reverse("reporting:dashboard")).content.decode()

    assert f'href="{reverse("cab:queue")}"' not in page


def test_a_page_outside_your_scope_is_a_404_in_the_layout_with_a_way_on(
    client, production_release, outsider
):
    client.force_login(outsider)

    response = client.get(reverse("approvals:release_detail", args=[production_release.pk]))

    body = response.content.decode()
    assert response.status_code == 404
    assert 'class="navbar' in body and "Sign out" in body
    assert "ask an administrator" in body
    assert f'href="{reverse("reporting:dashboard")}"' in body


def test_an_administrator_page_is_a_403_in_the_layout_saying_why(client, org, approver):
    client.force_login(approver)

    response = client.get(reverse("governance:role_list"))

    body = response.content.decode()
    assert response.status_code == 403
    assert "This page is for Signoff administrators." in body
    assert 'class="navbar' in body


def test_the_500_page_renders_in_the_layout_without_a_request_context():
    response = server_error(RequestFactory().get("/"))

    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body
    assert "Signoff" in body and "vendor/bootstrap" in body
