"""The release page's promotion panel: the clusters where the release's digest was admitted,
along its promotion path, in a constant number of queries."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.admission.presenters import promotion_panel
from approvals.admission.services import register_cluster
from approvals.models import Release
from tests.approvals.admission.conftest import answer, pinned, review


def panel(release: Release) -> dict:
    return promotion_panel(Release.objects.for_page().get(pk=release.pk))


def test_no_panel_where_no_cluster_could_run_the_release(approved_release):
    assert panel(approved_release) == {}


def test_a_registered_cluster_that_has_not_admitted_it_is_named(cluster, approved_release):
    assert panel(approved_release) == {
        "rows": [],
        "waiting": ["prod-eu-1"],
        "environment": "Production",
        "digest": approved_release.short_digest,
    }


def test_the_panel_follows_the_digest_through_environments(
    cluster, approve, service, staging, production, send
):
    staged = approve(service, staging)
    released = approve(service, production, digest=staged.digest, image=staged.image)
    stage = register_cluster(
        name="stage-1", environment=staging, namespaces=["payments"], actor="t"
    )
    stage.cluster.token = stage.token
    answer(send(stage.cluster, review("Deployment", [pinned(staged)], name="payments-api")))
    answer(send(cluster, review("Deployment", [pinned(released)], name="payments-api")))

    shown = panel(released)

    assert shown["waiting"] == []
    assert [
        (
            r.cluster,
            r.environment,
            r.namespace,
            r.workload,
            r.release_id,
            r.this_release,
            r.emergency,
        )
        for r in shown["rows"]
    ] == [
        ("stage-1", "Staging", "payments", "Deployment/payments-api", staged.pk, False, False),
        (
            "prod-eu-1",
            "Production",
            "payments",
            "Deployment/payments-api",
            released.pk,
            True,
            False,
        ),
    ]


def test_the_release_page_shows_the_clusters(cluster, approved_release, send, client, approver):
    answer(send(cluster, review("Deployment", [pinned(approved_release)], name="payments-api")))
    client.force_login(approver)

    body = client.get(f"/approvals/releases/{approved_release.pk}/").content.decode()

    assert 'data-testid="release-promotion"' in body
    assert 'data-cluster="prod-eu-1"' in body
    assert "Deployment/payments-api" in body


def test_the_panel_costs_one_query_whatever_the_clusters(
    cluster, approved_release, production, send
):
    release = Release.objects.for_page().get(pk=approved_release.pk)
    with CaptureQueriesContext(connection) as none:
        promotion_panel(release)
    for number in range(4):
        more = register_cluster(
            name=f"edge-{number}", environment=production, namespaces=["payments"], actor="t"
        )
        more.cluster.token = more.token
        answer(send(more.cluster, review("Pod", [pinned(approved_release)])))
    with CaptureQueriesContext(connection) as four:
        shown = promotion_panel(release)

    assert len(none) == len(four) == 1
    assert len(shown["rows"]) == 4
