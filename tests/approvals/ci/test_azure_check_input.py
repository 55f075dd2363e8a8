"""Whatever headers and body arrive at the Azure DevOps check, the answer is the API's JSON
(never a server error) and a refused check keeps nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.pipelines.models import PipelineWait
from governance.notifications.models import Delivery
from tests import factories
from tests.approvals.ci.conftest import check_headers

pytestmark = pytest.mark.django_db
HEADERS = ["PlanUrl", "ProjectId", "HubName", "PlanId", "JobId", "TaskInstanceId", "AuthToken"]
hostile = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "http://[::1",
            "https://dev.azure.com\x00/acme/",
            "ftp://dev.azure.com/acme/",
            "https://dev.azure.com.attacker.example/",
            "https://" + "a" * 600 + ".visualstudio.com/",
            "00000000-0000-0000-0000-00000000000g",
            "{4f0e9a3c-1b6d-4c55-9d43-2a7f8e1c0b11}",
            "build\n",
        ]
    ),
)


@pytest.fixture
def release(production_release):
    return production_release


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.sampled_from(HEADERS), value=hostile, body=st.one_of(st.none(), st.text()))
def test_hostile_check_headers_get_a_clear_answer_and_keep_nothing(
    client, release, pipeline_bot, settings, header, value, body
):
    settings.SIGNOFF_AZURE_DEVOPS_HOSTS = ("dev.azure.com", ".visualstudio.com")
    # No name is looked up: the test reaches nothing beyond this machine.
    settings.SIGNOFF_OUTBOUND_ALLOW_PRIVATE = True
    token = factories.token_for(pipeline_bot)
    counts = (PipelineWait.objects.count(), Delivery.objects.count())

    response = client.post(
        f"/integrations/azure/releases/{release.pk}/check",
        body if body is not None else "",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **check_headers("https://dev.azure.com/acme/", **{header: value}),
    )

    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert set(response.json()["error"]) == {"code", "message", "fields"}
        assert (PipelineWait.objects.count(), Delivery.objects.count()) == counts
