"""What people see of post-deploy verification: the release page's deployments (window, result,
health checks, rollback) in a constant number of queries, and health URLs in the catalogue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.verification import polling
from governance.models import LedgerEntry, Service

pytestmark = pytest.mark.django_db


def release_page(client, release) -> str:
    response = client.get(reverse("approvals:release_detail", args=[release.pk]))
    assert response.status_code == 200
    return " ".join(response.content.decode().split())


def row(body: str, deployment) -> str:
    start = body.rindex("<tr", 0, body.index(f'data-testid="deployment-{deployment.pk}"'))
    return body[start : body.index("</tr>", start)]


def test_the_release_page_shows_each_window_its_result_and_the_rollback(
    client, approver, approved_release, deploy, service, stub
):
    service.health_urls = [stub.url("/healthz")]
    service.save(update_fields=["health_urls"])
    failed = deploy(approved_release, rollback_url=stub.url("/rollback"))
    polling.verify_due(failed.created_at)
    stub.health_status = 500
    polling.verify_due(failed.created_at + timedelta(minutes=1))
    stub.health_status = 200
    watching = deploy(approved_release)
    polling.verify_due(watching.created_at)
    client.force_login(approver)

    body = release_page(client, approved_release)

    shown = row(body, failed)
    assert 'class="table-danger"' in shown
    assert '<span class="badge text-bg-danger">failed</span>' in shown
    assert "2 health checks, 1 unhealthy" in shown
    decided = failed.created_at + timedelta(minutes=1)
    assert f"{decided:%Y-%m-%d %H:%M} UTC, window {failed.created_at:%H:%M}\u2013" in shown
    assert f"{stub.url('/healthz')} answered 500 Internal Server Error" in shown
    assert 'data-testid="rollback"' in shown and "Rollback hook called" in shown
    shown = row(body, watching)
    assert '<span class="badge text-bg-warning">verifying</span>' in shown
    assert f"until {watching.verify_until:%H:%M} UTC" in shown and "every 60 s" in shown
    assert "1 health check, last" in shown
    assert "Rollback" not in shown


def test_a_failure_without_a_hook_says_to_roll_back_by_hand(
    client, approver, approved_release, deploy, api, pipeline_bot
):
    deployment = deploy(approved_release)
    api(pipeline_bot).post(
        f"/api/v1/releases/{approved_release.pk}/deployments/{deployment.pk}/health/",
        {"healthy": False, "detail": "checkout errors"},
    )
    client.force_login(approver)

    shown = row(release_page(client, approved_release), deployment)

    assert "reported unhealthy by ci-bot: checkout errors" in shown
    assert "No rollback hook was given with this deployment: roll back by hand." in shown


def test_a_deployment_without_verification_says_not_required(
    client, approver, production_release, pipeline_bot
):
    from approvals import services

    deployment = services.record_deployment(
        release=production_release, actor=pipeline_bot, status="failed"
    )
    client.force_login(approver)

    assert "not required" in row(release_page(client, production_release), deployment)


def test_the_release_page_s_queries_do_not_grow_with_deployments_or_checks(
    client, approver, approved_release, deploy, service, stub
):
    service.health_urls = [stub.url("/a"), stub.url("/b")]
    service.save(update_fields=["health_urls"])
    client.force_login(approver)
    first = deploy(approved_release)
    polling.verify_due(first.created_at)
    release_page(client, approved_release)  # warm-up: per-process caches
    with CaptureQueriesContext(connection) as one:
        release_page(client, approved_release)

    for _ in range(4):
        later = deploy(approved_release)
        polling.verify_due(later.created_at)
    with CaptureQueriesContext(connection) as five:
        release_page(client, approved_release)

    assert len(five) == len(one)


# --- Health URLs in the catalogue --------------------------------------------------------------


def service_form(service, **changes) -> dict:
    return {
        "name": service.name,
        "slug": service.slug,
        "description": service.description,
        "tier": service.tier,
        "team": service.team.pk,
        "vendor": "",
        "compliance_tags": service.compliance_tags,
        "other_compliance_tags": "",
        **changes,
    }


def test_an_administrator_sets_health_urls_one_a_line(client, org, administrator, service):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(
        url,
        service_form(
            service,
            health_urls=" https://payments.internal/healthz \n\nhttp://10.0.0.5:8080/ready\n"
            "https://payments.internal/healthz",
        ),
    )

    assert response.status_code == 302
    assert Service.objects.get(pk=service.pk).health_urls == [
        "https://payments.internal/healthz",
        "http://10.0.0.5:8080/ready",
    ]
    assert LedgerEntry.objects.get(kind="catalogue.updated").payload["fields"] == ["health_urls"]
    edit = client.get(url).content.decode()
    assert "https://payments.internal/healthz\nhttp://10.0.0.5:8080/ready</textarea>" in edit


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "ftp://payments.internal/healthz",
            "Not an http(s) URL: “ftp://payments.internal/healthz”",
        ),
        ("payments.internal/healthz", "Not an http(s) URL: “payments.internal/healthz”"),
        ("\n".join(f"https://h{n}.internal/" for n in range(11)), "At most 10 health URLs."),
    ],
)
def test_a_bad_health_url_is_a_form_error_and_changes_nothing(
    client, org, administrator, service, typed, message
):
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])
    entries = LedgerEntry.objects.count()

    response = client.post(url, service_form(service, health_urls=typed))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Service.objects.get(pk=service.pk).health_urls == []
    assert LedgerEntry.objects.count() == entries


def test_unchanged_health_urls_are_no_change(client, org, administrator, service):
    Service.objects.filter(pk=service.pk).update(health_urls=["https://payments.internal/h"])
    client.force_login(administrator)
    url = reverse("governance:catalogue_edit", args=["services", service.pk])

    response = client.post(
        url,
        service_form(
            service, description="Card payments", health_urls="https://payments.internal/h\n"
        ),
    )

    assert response.status_code == 302
    assert LedgerEntry.objects.get(kind="catalogue.updated").payload["fields"] == ["description"]
