"""/lake/: where each destination stands, for administrators and auditors of the organisation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import services
from governance.models import LedgerEntry, Role
from reporting.lake.exporter import export_lake
from reporting.lake.models import LakeExport
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/lake/"


@pytest.fixture
def security_approver(service):
    user = factories.UserFactory(username="sam")
    factories.grant(user, Role.SECURITY_APPROVER, service)
    return user


@pytest.fixture
def exported(lake, org, low_tier_service, staging, pipeline_bot):
    services.request_approval(
        data=factories.release_input(low_tier_service, staging, triggered_by="dave"),
        actor=pipeline_bot,
    )
    return export_lake()


def test_anonymous_visitors_are_sent_to_sign_in(client, exported):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


@pytest.mark.parametrize(
    "persona", ["requester", "approver", "cab_member", "security_approver", "outsider"]
)
def test_people_who_neither_administer_nor_audit_get_403_and_see_nothing(
    client, request, exported, persona
):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(URL)
    assert response.status_code == 403
    assert exported.files[0].encode() not in response.content
    assert b"Exported through" not in response.content


def test_an_auditor_of_one_service_gets_403(client, exported, service):
    scoped = factories.UserFactory(username="service-auditor")
    factories.grant(scoped, Role.AUDITOR, service)
    client.force_login(scoped)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("persona", ["auditor", "administrator"])
def test_auditors_and_administrators_see_the_watermark_and_the_files(
    client, request, exported, persona, lake
):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    # The administrator's grant, made after the export, is one entry the lake has not yet.
    behind = LedgerEntry.objects.count() - exported.through_seq
    assert f"entry #{exported.through_seq}</dd>" in page
    assert f">{behind} entries</dd>" in page
    assert f"Folder {lake.folder}" in page
    for name in exported.files:
        assert name in page
    assert f"{exported.events} events in 2 files" in page


def test_a_failed_run_shows_its_error(client, auditor, exported):
    LakeExport.objects.create(
        destination="lake",
        from_seq=exported.through_seq,
        through_seq=exported.through_seq,
        status="failed",
        error="ClientError: An error occurred (AccessDenied) when calling the PutObject operation",
    )
    client.force_login(auditor)
    page = client.get(URL).content.decode()
    assert 'data-testid="last-error"' in page
    assert "(AccessDenied) when calling the PutObject operation" in page


def test_the_page_costs_the_same_queries_for_one_run_and_for_many(client, auditor, exported):
    client.force_login(auditor)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    one = queries()
    for _ in range(30):
        export_lake()
    assert LakeExport.objects.count() == 31
    assert queries() == one == 9


def test_web_processes_do_not_load_pyarrow():
    """The page is routed in every web process; Parquet (~40 MiB) is for the worker alone."""
    code = "import django; django.setup(); import config.urls, sys; print('pyarrow' in sys.modules)"
    environment = {**os.environ, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environment,
    )
    assert done.stdout.strip() == "False"
