"""Vendor releases: the same approval flow, with the vendor's SLA shown and breaches flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.context import policy_context
from approvals.models import ApprovalRequest, Release
from approvals.vendors import vendor_sla
from governance.models import Role, Vendor
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor(db):
    return Vendor.objects.create(
        name="Acme Payroll",
        slug="acme-payroll",
        contact_name="Priya Raman",
        contact_email="releases@acme.example",
        notice_period_hours=72,
        approval_turnaround_hours=24,
    )


@pytest.fixture
def saas(team, vendor, approver):
    service = factories.ServiceFactory(slug="payroll-saas", tier=2, team=team)
    service.vendor = vendor
    service.save(update_fields=["vendor"])
    factories.grant(approver, Role.APPROVER, service)
    return service


def vendor_release(saas, staging, bot, *, notice_hours: int | None) -> Release:
    planned = timezone.now() + timedelta(hours=notice_hours) if notice_hours is not None else None
    release, _ = services.request_approval(
        data=factories.release_input(saas, staging, planned_at=planned), actor=bot
    )
    return Release.objects.for_page().get(pk=release.pk)


def test_short_notice_is_flagged_on_the_release_page(
    client, org, saas, staging, pipeline_bot, approver
):
    release = vendor_release(saas, staging, pipeline_bot, notice_hours=24)
    sla = vendor_sla(release, timezone.now())
    assert (sla.notice_given_hours, sla.notice_breached, sla.turnaround_breached) == (
        23,
        True,
        False,
    )
    client.force_login(approver)
    body = client.get(reverse("approvals:release_detail", args=[release.pk])).content.decode()
    assert "Acme Payroll" in body and "short notice" in body and "SLA breached" in body


def test_enough_notice_and_a_timely_decision_are_within_sla(
    org, saas, staging, pipeline_bot, approver
):
    release = vendor_release(saas, staging, pipeline_bot, notice_hours=100)
    factories.decide(release, approver)
    release = Release.objects.for_page().get(pk=release.pk)
    assert not vendor_sla(release, timezone.now()).breached


def test_an_undecided_vendor_release_past_the_turnaround_is_late(org, saas, staging, pipeline_bot):
    release = vendor_release(saas, staging, pipeline_bot, notice_hours=None)
    ApprovalRequest.objects.filter(release=release).update(
        requested_at=timezone.now() - timedelta(hours=30)
    )
    release = Release.objects.for_page().get(pk=release.pk)
    sla = vendor_sla(release, timezone.now())
    assert sla.turnaround_breached and sla.notice_given_hours is None


def test_our_own_services_have_no_vendor_sla(production_release):
    release = Release.objects.for_page().get(pk=production_release.pk)
    assert vendor_sla(release, timezone.now()) is None


def test_policies_can_tell_vendor_releases_apart(org, saas, staging, pipeline_bot):
    release = vendor_release(saas, staging, pipeline_bot, notice_hours=100)
    assert policy_context(release)["service"]["vendor"] == "acme-payroll"


def test_the_api_accepts_a_planned_date_and_refuses_junk(org, saas, pipeline_bot, api):
    client = api(pipeline_bot)
    body = factories.release_body(service="payroll-saas", environment="staging")
    body["planned_at"] = "not a date"
    assert client.post("/api/v1/releases/", body).status_code == 400
    body["planned_at"] = (timezone.now() + timedelta(days=5)).isoformat()
    response = client.post("/api/v1/releases/", body)
    assert response.status_code == 201
    assert Release.objects.get(pk=response.json()["id"]).planned_at is not None
