"""POST /integrations/kubernetes/<cluster>/admission: what kube-apiserver is told, for every
kind it sends, and what the ledger and the promotion records keep of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.admission.models import Admission
from approvals.models import ApprovalRequest
from tests import factories
from tests.approvals.admission.conftest import (
    admission_entries,
    answer,
    pinned,
    review,
)

WORKLOAD_KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]


def test_a_pod_pinned_to_an_approved_digest_is_admitted_and_recorded(
    cluster, approved_release, send
):
    body = review("Pod", [pinned(approved_release)], name="payments-api-0")

    response = answer(send(cluster, body))

    assert response == {"uid": body["request"]["uid"], "allowed": True}
    admission = Admission.objects.get()
    assert (admission.cluster, admission.release, admission.digest) == (
        cluster,
        approved_release,
        approved_release.digest,
    )
    assert (admission.namespace, admission.workload, admission.emergency) == (
        "payments",
        "Pod/payments-api-0",
        False,
    )
    [entry] = admission_entries()
    assert (entry.kind, entry.subject, entry.actor) == (
        "admission.admitted",
        "cluster:prod-eu-1",
        "dave@example.com",
    )
    assert entry.payload == {
        "uid": body["request"]["uid"],
        "cluster": "prod-eu-1",
        "environment": "production",
        "service": "payments-api",
        "release": approved_release.pk,
        "version": approved_release.version,
        "digest": approved_release.digest,
        "image": pinned(approved_release),
        "namespace": "payments",
        "workload": "Pod/payments-api-0",
        "emergency": False,
    }


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_workload_kind_is_admitted_with_an_approved_digest(
    kind, cluster, approved_release, send
):
    body = review(kind, [pinned(approved_release)], name="payments-api")

    assert answer(send(cluster, body)) == {"uid": body["request"]["uid"], "allowed": True}
    assert Admission.objects.get().workload == f"{kind}/payments-api"


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_workload_kind_is_denied_an_image_pinned_by_tag_only(kind, cluster, send):
    body = review(kind, ["registry.example.com/payments-api:2.14.0"], name="payments-api")

    response = answer(send(cluster, body))

    assert response == {
        "uid": body["request"]["uid"],
        "allowed": False,
        "status": {
            "code": 403,
            "reason": "Forbidden",
            "message": (
                f"Signoff denied {kind}/payments-api in payments (prod-eu-1, Production): "
                "registry.example.com/payments-api:2.14.0 is not pinned by digest: deploy "
                "registry.example.com/payments-api@sha256:<digest> with the digest of a release "
                "approved for Production."
            ),
        },
    }
    assert Admission.objects.count() == 0


def test_a_denial_is_ledgered_with_the_request_uid(cluster, approved_release, send):
    unpinned = "registry.example.com/payments-api:latest"
    body = review("Deployment", [pinned(approved_release), unpinned], name="payments-api")

    response = answer(send(cluster, body))

    assert response["allowed"] is False
    [entry] = admission_entries()
    assert (entry.kind, entry.subject, entry.actor) == (
        "admission.denied",
        "cluster:prod-eu-1",
        "dave@example.com",
    )
    assert entry.payload == {
        "uid": body["request"]["uid"],
        "cluster": "prod-eu-1",
        "environment": "production",
        "namespace": "payments",
        "operation": "CREATE",
        "object": "Deployment/payments-api",
        "workload": "Deployment/payments-api",
        "images": [pinned(approved_release), unpinned],
        "reasons": [
            f"{unpinned} is not pinned by digest: deploy registry.example.com/payments-api"
            "@sha256:<digest> with the digest of a release approved for Production."
        ],
    }
    # One image denied is enough to keep the whole object out: nothing was admitted.
    assert Admission.objects.count() == 0


@pytest.mark.parametrize("where", ["init", "ephemeral"])
def test_init_and_ephemeral_containers_are_checked_too(where, cluster, approved_release, send):
    extra = {where: ["busybox:1.36"]}
    body = review("Pod", [pinned(approved_release)], **extra)

    response = answer(send(cluster, body))

    assert response["allowed"] is False
    assert response["status"]["message"].endswith(
        "busybox:1.36 is not pinned by digest: deploy docker.io/library/busybox@sha256:<digest> "
        "with the digest of a release approved for Production."
    )


def test_an_ephemeral_container_added_by_kubectl_debug_is_checked(cluster, approved_release, send):
    """`kubectl debug` updates pods/ephemeralcontainers: the pod's own image ran already."""
    running = [pinned(approved_release)]
    body = review(
        "Pod", running, operation="UPDATE", ephemeral=["busybox:1.36"], old_images=running
    )
    body["request"]["subResource"] = "ephemeralcontainers"

    response = answer(send(cluster, body))

    assert response["allowed"] is False
    assert "busybox:1.36 is not pinned by digest" in response["status"]["message"]


def test_a_digest_nobody_requested_is_denied_with_how_to_get_it_approved(cluster, send, org):
    digest = factories.digest("unknown")
    body = review("Pod", [f"registry.example.com/payments-api@{digest}"], name="p")

    message = answer(send(cluster, body))["status"]["message"]

    assert message == (
        "Signoff denied Pod/p in payments (prod-eu-1, Production): "
        f"registry.example.com/payments-api@{digest} is not approved for Production: no release "
        f"names digest {digest[7:19]}. Request approval for the service that builds it to "
        "production with this image and digest (http://localhost:8000/api/v1/releases/)."
    )


def test_a_digest_approved_for_staging_only_names_the_service_to_request(
    cluster, approve, service, staging, send
):
    release = approve(service, staging)
    body = review("Pod", [pinned(release)], name="p")

    message = answer(send(cluster, body))["status"]["message"]

    assert message == (
        f"Signoff denied Pod/p in payments (prod-eu-1, Production): {pinned(release)} is not "
        "approved for Production: request approval for payments-api to production with this "
        "digest (http://localhost:8000/api/v1/releases/); it was requested for Staging in "
        f"http://localhost:8000/approvals/releases/{release.pk}/"
    )


def test_a_pending_release_is_denied_with_the_gate_reason(cluster, pending_release, send):
    body = review("Pod", [pinned(pending_release)], name="p")

    message = answer(send(cluster, body))["status"]["message"]

    assert message.startswith(
        f"Signoff denied Pod/p in payments (prod-eu-1, Production): {pinned(pending_release)}"
        f": payments-api {pending_release.version} to Production is pending (Waiting for "
        "Service approval: 0 of 2 approvals (eligible: alice, bob, due "
    )
    assert message.endswith(
        f"Follow it at http://localhost:8000/approvals/releases/{pending_release.pk}/"
    )


def test_a_blocked_release_is_denied_with_what_blocks_it(cluster, production_release, send):
    body = review("Pod", [pinned(production_release)], name="p")

    message = answer(send(cluster, body))["status"]["message"]

    assert message == (
        f"Signoff denied Pod/p in payments (prod-eu-1, Production): {pinned(production_release)}"
        f": payments-api {production_release.version} to Production is blocked (Missing "
        "required evidence: security_scan evidence with status 'passed' and at most 0 critical "
        "findings.). Follow it at "
        f"http://localhost:8000/approvals/releases/{production_release.pk}/"
    )


def test_an_approval_that_is_no_longer_valid_admits_nothing(cluster, approved_release, send):
    ApprovalRequest.objects.filter(release=approved_release).update(
        valid_until=timezone.now() - timedelta(minutes=1)
    )
    body = review("Pod", [pinned(approved_release)])

    response = answer(send(cluster, body))

    assert response["allowed"] is False
    assert " is expired (The approval was valid until " in response["status"]["message"]


def test_the_same_digest_under_another_repository_is_denied(cluster, approved_release, send):
    image = f"registry.example.com/someone-else@{approved_release.digest}"

    message = answer(send(cluster, review("Pod", [image], name="p")))["status"]["message"]

    assert message == (
        f"Signoff denied Pod/p in payments (prod-eu-1, Production): {image}: digest "
        f"{approved_release.digest[7:19]} was requested for Production as "
        "registry.example.com/payments-api, not registry.example.com/someone-else; deploy it "
        "by the repository its release names."
    )


@pytest.mark.parametrize(
    ("release_image", "pod_image"),
    [
        ("docker.io/library/nginx", "nginx"),
        ("nginx", "docker.io/library/nginx:1.27"),
        ("index.docker.io/library/nginx", "nginx:1.27"),
        ("fluent/fluent-bit", "docker.io/fluent/fluent-bit:3.1"),
        ("docker.io/fluent/fluent-bit", "fluent/fluent-bit"),
        ("registry:5000/team/x", "registry:5000/team/x:v1"),
        ("gcr.io/google-containers/pause", "gcr.io/google-containers/pause:3.9"),
        ("localhost/tools/x", "localhost/tools/x"),
    ],
)
def test_repositories_match_as_docker_normalises_them(
    release_image, pod_image, cluster, approve, service, production, send
):
    release = approve(service, production, image=release_image)

    response = answer(send(cluster, review("Pod", [f"{pod_image}@{release.digest}"])))

    assert response["allowed"] is True


@pytest.mark.parametrize(
    ("release_image", "pod_image"),
    [
        ("nginx", "docker.io/bitnami/nginx"),
        ("fluent/fluent-bit", "fluent-bit"),
        ("registry:5000/x", "registry/x"),
        ("gcr.io/project/x", "docker.io/project/x"),
    ],
)
def test_different_repositories_do_not_match(
    release_image, pod_image, cluster, approve, service, production, send
):
    release = approve(service, production, image=release_image)

    response = answer(send(cluster, review("Pod", [f"{pod_image}@{release.digest}"])))

    assert response["allowed"] is False


def test_an_image_that_is_not_a_reference_is_denied_by_name(cluster, send, org):
    response = answer(send(cluster, review("Pod", ["Registry.Example.com/UPPER:1"], name="p")))

    assert response["status"]["message"] == (
        "Signoff denied Pod/p in payments (prod-eu-1, Production): "
        "Registry.Example.com/UPPER:1: 'Registry.Example.com/UPPER:1' is not a valid image "
        "reference (repository names are lower-case, digests are algorithm:hex)."
    )


def test_only_sha256_digests_are_approved(cluster, send, org):
    image = "registry.example.com/payments-api@sha512:" + "a" * 128

    response = answer(send(cluster, review("Pod", [image])))

    assert response["status"]["message"].endswith(
        f"{image}: only sha256 digests are approved (sha256:<64 hex>)."
    )
