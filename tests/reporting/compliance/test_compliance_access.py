"""Who may fetch compliance reports, and what bad input gets: a clear 400 and nothing written."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from governance.models import LedgerEntry, Role
from reporting.compliance.exports import run_compliance_export
from reporting.compliance.report import ReportQuery
from reporting.compliance.services import queue_compliance_export
from reporting.models import ReportExport
from tests import factories
from tests.reporting.compliance.seed import day, period

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def finished_export(auditor, service, django_capture_on_commit_callbacks) -> ReportExport:
    """A done CSV export of the auditor's (its task run directly)."""
    query = ReportQuery("SOX", day(-59), day(0))
    with django_capture_on_commit_callbacks(execute=False):
        export = queue_compliance_export(query=query, format="csv", actor=auditor)
    run_compliance_export(export.pk)
    return export


def urls(export: ReportExport) -> dict[str, str]:
    query = "?" + "&".join(f"{k}={v}" for k, v in {"framework": "sox", **period()}.items())
    return {
        "form": reverse("reporting:compliance"),
        "csv": reverse("reporting:compliance_csv") + query,
        "pdf": reverse("reporting:compliance_pdf") + query,
        "export": reverse("reporting:export", args=[export.pk]),
        "download": reverse("reporting:export_download", args=[export.pk]),
    }


PAGES = ["form", "csv", "pdf", "export", "download"]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_people_are_sent_to_sign_in(client, finished_export, page):
    response = client.get(urls(finished_export)[page])

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("who", ["outsider", "administrator", "approver"])
def test_people_without_the_auditor_role_are_refused(client, finished_export, page, who, request):
    """Administrators included: they administer roles, they are not auditors."""
    client.force_login(request.getfixturevalue(who))

    response = client.get(urls(finished_export)[page])

    assert response.status_code == 403
    assert ReportExport.objects.count() == 1


@pytest.mark.parametrize("page", PAGES)
def test_an_auditor_signed_in_opens_every_page(client, auditor, finished_export, page):
    client.force_login(auditor)

    assert client.get(urls(finished_export)[page]).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_an_auditors_bearer_token_opens_every_page(client, auditor, finished_export, page):
    token = factories.token_for(auditor)

    response = client.get(urls(finished_export)[page], HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_a_bad_token_gets_401(client, finished_export, page):
    response = client.get(urls(finished_export)[page], HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("page", ["form", "csv", "pdf"])
def test_a_scoped_auditor_opens_the_reports(client, service, finished_export, page):
    scoped = factories.UserFactory(username="sam")
    factories.grant_scoped(scoped, Role.AUDITOR, service=service)
    client.force_login(scoped)

    assert client.get(urls(finished_export)[page]).status_code == 200


@pytest.mark.parametrize("page", ["export", "download"])
def test_another_auditors_export_is_not_found(client, finished_export, page):
    """Only the person who asked for an export sees it; nobody learns that it exists."""
    colleague = factories.UserFactory(username="eve")
    factories.grant(colleague, Role.AUDITOR)
    client.force_login(colleague)

    assert client.get(urls(finished_export)[page]).status_code == 404
    token = factories.token_for(colleague)
    response = client.get(urls(finished_export)[page], HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404


BAD_INPUT = [
    ({"from": "2026-11-01", "to": "2026-11-30"}, "Choose a framework: framework=sox"),
    ({"framework": "", "from": "2026-11-01", "to": "2026-11-30"}, "Choose a framework"),
    (
        {"framework": "soxx", "from": "2026-11-01", "to": "2026-11-30"},
        "Unknown framework 'soxx'; choose one of SOX, PCI, HIPAA, GDPR, ISO27001, SOC2.",
    ),
    ({"framework": "sox", "to": "2026-11-30"}, "(from is missing)"),
    ({"framework": "sox", "from": "2026-11-01"}, "(to is missing)"),
    (
        {"framework": "sox", "from": "2026-02-30", "to": "2026-03-01"},
        "from='2026-02-30' is not a date; write it as YYYY-MM-DD.",
    ),
    (
        {"framework": "sox", "from": "20261101", "to": "2026-11-30"},
        "from='20261101' is not a date",
    ),
    (
        {"framework": "sox", "from": "2026-11-01", "to": "yesterday"},
        "to='yesterday' is not a date",
    ),
    (
        {"framework": "sox", "from": "2026-12-01", "to": "2026-11-01"},
        "The period starts after it ends: from=2026-12-01 is later than to=2026-11-01.",
    ),
]


def _written() -> tuple[int, int]:
    return ReportExport.objects.count(), LedgerEntry.objects.count()


@pytest.mark.parametrize("name", ["reporting:compliance_csv", "reporting:compliance_pdf"])
@pytest.mark.parametrize(("query", "message"), BAD_INPUT)
def test_bad_parameters_get_400_json_with_a_token_and_write_nothing(
    client, auditor, name, query, message
):
    token = factories.token_for(auditor)
    before = _written()

    response = client.get(reverse(name), query, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 400
    error = json.loads(response.content)["error"]
    assert error["code"] == "invalid_parameters"
    assert message in error["message"]
    assert _written() == before


@pytest.mark.parametrize(("query", "message"), BAD_INPUT)
def test_bad_parameters_show_the_form_again_with_the_message(client, auditor, query, message):
    client.force_login(auditor)
    before = _written()

    response = client.get(reverse("reporting:compliance_csv"), query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert message in response.content.decode().replace("&#x27;", "'")
    assert _written() == before


def test_the_form_page_offers_every_framework_and_both_formats(client, auditor):
    client.force_login(auditor)

    page = client.get(reverse("reporting:compliance")).content.decode()

    for framework in ("SOX", "PCI", "HIPAA", "GDPR", "ISO27001", "SOC2"):
        assert f'<option value="{framework}"' in page
    assert f'formaction="{reverse("reporting:compliance_csv")}"' in page
    assert f'formaction="{reverse("reporting:compliance_pdf")}"' in page


@pytest.mark.parametrize("count", [1, 15])
def test_the_form_page_costs_the_same_queries_however_many_exports(
    client, auditor, django_assert_num_queries, django_capture_on_commit_callbacks, count
):
    client.force_login(auditor)
    query = ReportQuery("SOX", day(-59), day(0))
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(count):
            queue_compliance_export(query=query, format="csv", actor=auditor)

    # session, user, the auditor check, the menu's roles, the latest exports
    with django_assert_num_queries(5):
        response = client.get(reverse("reporting:compliance"))

    assert response.content.decode().count(">Open</a>") == min(count, 10)
