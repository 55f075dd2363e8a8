"""/approvals/integrations/clusters/: administrators register clusters, see the token once,
and change a cluster's environment or namespaces."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.admission.services import register_cluster, token_digest
from governance.models import LedgerEntry, Target
from tests.approvals.admission.conftest import CLUSTER

LIST = "/approvals/integrations/clusters/"
EDIT = f"/approvals/integrations/clusters/{CLUSTER}/"


def registration(**changes) -> dict:
    data = {
        "name": "prod-us-1",
        "environment": "production",
        "namespaces": "payments\ncheckout, payments",
        "reason": "New region",
    }
    return {**data, **changes}


def cluster_state() -> list[tuple]:
    return list(
        Target.objects.filter(platform="kubernetes")
        .order_by("slug")
        .values_list("slug", "environment__slug", "namespaces", "token_digest")
    )


@pytest.mark.parametrize(
    ("persona", "status"),
    [(None, 302), ("outsider", 403), ("approver", 403), ("auditor", 403), ("administrator", 200)],
)
@pytest.mark.parametrize("path", [LIST, EDIT])
def test_only_administrators_open_the_clusters_pages(
    persona, status, path, request, client, cluster
):
    if persona:
        client.force_login(request.getfixturevalue(persona))

    response = client.get(path)

    assert response.status_code == status
    if persona is None:
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("persona", [None, "outsider", "approver", "auditor"])
def test_nobody_else_registers_a_cluster(persona, request, client, cluster):
    if persona:
        client.force_login(request.getfixturevalue(persona))
    before, entries = cluster_state(), LedgerEntry.objects.count()

    response = client.post(LIST, registration())

    assert response.status_code in (302, 403)
    assert cluster_state() == before
    assert LedgerEntry.objects.count() == entries


def test_an_administrator_registers_a_cluster_and_sees_its_token_once(client, administrator, org):
    client.force_login(administrator)

    response = client.post(LIST, registration())

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    token = response.context["registration"].token
    cluster = Target.objects.get(slug="prod-us-1")
    assert (cluster.platform, cluster.environment.slug, cluster.namespaces) == (
        "kubernetes",
        "production",
        ["checkout", "payments"],
    )
    assert cluster.token_digest == token_digest(token)
    assert f"token: &quot;{token}&quot;" in response.content.decode()
    entry = LedgerEntry.objects.get(kind="cluster.registered")
    assert (entry.subject, entry.actor) == ("cluster:prod-us-1", "ada")
    assert entry.payload == {
        "name": "prod-us-1",
        "environment": "production",
        "namespaces": ["checkout", "payments"],
        "cluster": "prod-us-1",
        "changed": [],
        "token_issued": True,
        "reason": "New region",
    }
    assert token not in client.get(LIST).content.decode()


def test_updating_a_cluster_keeps_its_token_unless_a_new_one_is_asked_for(
    client, administrator, cluster
):
    client.force_login(administrator)
    digest = cluster.token_digest
    data = registration(name="ignored", environment="staging", namespaces="payments")

    kept = client.post(EDIT, data)

    cluster.refresh_from_db()
    assert kept.status_code == 200
    assert kept.context["registration"].token is None
    assert (cluster.name, cluster.environment.slug, cluster.namespaces) == (
        "prod-eu-1",
        "staging",
        ["payments"],
    )
    assert cluster.token_digest == digest
    entry = LedgerEntry.objects.filter(kind="cluster.updated").get()
    assert (entry.payload["changed"], entry.payload["token_issued"]) == (
        ["environment", "namespaces"],
        False,
    )

    rotated = client.post(EDIT, {**data, "rotate_token": "on"})

    cluster.refresh_from_db()
    new_token = rotated.context["registration"].token
    assert cluster.token_digest == token_digest(new_token) != digest


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"namespaces": "Payments"}, "namespaces", "Not a namespace name: Payments."),
        ({"namespaces": " , "}, "namespaces", "Name at least one namespace."),
        ({"namespaces": "a" * 64}, "namespaces", f"Not a namespace name: {'a' * 64}."),
        ({"name": "!!!"}, "name", "Give a short name such as prod-eu-1."),
        ({"environment": "nowhere"}, "environment", None),
        ({"reason": ""}, "reason", "This field is required."),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(
    changes, field, message, client, administrator, org
):
    client.force_login(administrator)
    before, entries = cluster_state(), LedgerEntry.objects.count()

    response = client.post(LIST, registration(**changes))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors
    if message:
        assert errors[field] == [message]
    assert cluster_state() == before
    assert LedgerEntry.objects.count() == entries


def test_a_slug_taken_by_another_target_of_the_environment_is_refused(
    client, administrator, production
):
    Target.objects.create(environment=production, name="Prod US", slug="prod-us-1", platform="aws")
    client.force_login(administrator)

    response = client.post(LIST, registration())

    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["The slug prod-us-1 is taken in Production."]
    assert not Target.objects.filter(platform="kubernetes").exists()


def test_the_list_costs_the_same_for_one_cluster_and_for_many(
    client, administrator, cluster, production
):
    client.force_login(administrator)
    with CaptureQueriesContext(connection) as one:
        response = client.get(LIST)
    for number in range(5):
        register_cluster(
            name=f"edge-{number}", environment=production, namespaces=["payments"], actor="test"
        )
    with CaptureQueriesContext(connection) as six:
        client.get(LIST)

    assert len(six) == len(one)
    assert [c.slug for c in response.context["clusters"]] == ["prod-eu-1"]
    body = response.content.decode()
    assert "http://localhost:8000/integrations/kubernetes/&lt;cluster&gt;/admission" in body
    assert '<span class="badge text-bg-light border mono me-1">checkout</span>' in body


def test_an_unknown_cluster_page_is_not_found(client, administrator, org):
    client.force_login(administrator)

    assert client.get("/approvals/integrations/clusters/nope/").status_code == 404
