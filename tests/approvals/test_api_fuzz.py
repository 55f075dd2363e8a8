"""Property tests: whatever JSON a pipeline sends, the API answers with a clear error, never a 500.

Hypothesis mutates a valid request body (dropping keys, swapping values for arbitrary JSON) and
also throws arbitrary documents at the write endpoints.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.models import Release
from tests import factories

pytestmark = pytest.mark.django_db

ALLOWED = {200, 201, 400, 403, 404, 409, 413}
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated_body(data: st.DataObject) -> dict:
    """The example body with some keys (at any depth) dropped or replaced by arbitrary JSON."""
    body = factories.release_body()

    def mutate(node: dict) -> dict:
        for key in list(node):
            action = data.draw(st.sampled_from(["keep", "keep", "drop", "replace", "recurse"]))
            if action == "drop":
                del node[key]
            elif action == "replace":
                node[key] = data.draw(json_values)
            elif action == "recurse" and isinstance(node[key], dict):
                mutate(node[key])
        return node

    return mutate(body)


def assert_clear_answer(response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.content[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["fields"], dict)


@FUZZ
@given(data=st.data())
def test_release_requests_never_fail_with_a_server_error(org, service, pipeline_bot, api, data):
    client = api(pipeline_bot)
    before = Release.objects.count()
    response = client.post("/api/v1/releases/", mutated_body(data))
    assert_clear_answer(response)
    if response.status_code >= 400:
        assert Release.objects.count() == before


@FUZZ
@given(body=json_values)
def test_arbitrary_documents_get_a_clear_error(production_release, approver, api, body):
    client = api(approver)
    for path in (
        "/api/v1/releases/",
        f"/api/v1/releases/{production_release.pk}/decisions/",
        f"/api/v1/releases/{production_release.pk}/evidence/",
    ):
        assert_clear_answer(client.post(path, body))
