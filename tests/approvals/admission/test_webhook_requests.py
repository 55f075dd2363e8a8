"""The webhook's edges: who may call it, bodies that are not reviews, dry runs, replays,
emergencies, namespaces and operations it leaves alone, and what a review costs."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import services
from approvals.admission.models import Admission
from approvals.admission.services import register_cluster
from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import end_emergency
from tests import factories
from tests.approvals.admission.conftest import (
    EVIDENCE,
    URL,
    admission_entries,
    answer,
    pinned,
    review,
)
from tests.approvals.emergencies.helpers import declare_for

UNPINNED = "registry.example.com/payments-api:latest"


def written() -> dict:
    """Every row a review could write: admissions, and everything an approval write touches."""
    return {**factories.state_counts(), "Admission": Admission.objects.count()}


# --- Who may call it ---------------------------------------------------------------------------


@pytest.fixture
def other_cluster(org, staging):
    registration = register_cluster(
        name="stage-1", environment=staging, namespaces=["payments"], actor="test"
    )
    registration.cluster.token = registration.token
    return registration.cluster


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("", 401, "token_missing"),
        ("wrong-token", 401, "token_invalid"),
        ("other-cluster", 401, "token_invalid"),
    ],
)
def test_a_call_without_the_cluster_token_is_refused_and_writes_nothing(
    token, status, code, cluster, other_cluster, send
):
    token = other_cluster.token if token == "other-cluster" else token
    before = written()

    response = send(cluster, review("Pod", [UNPINNED]), token=token or "")

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert written() == before


def test_a_bearer_scheme_is_required(cluster, client):
    response = client.post(
        URL,
        json.dumps(review("Pod", [UNPINNED])),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {cluster.token}",
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_missing"


def test_an_unknown_cluster_is_not_found(cluster, send):
    before = written()

    response = send(
        cluster, review("Pod", [UNPINNED]), url="/integrations/kubernetes/nope/admission"
    )

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "No Kubernetes cluster nope is registered.",
            "fields": {},
        }
    }
    assert written() == before


def test_a_target_that_is_not_a_kubernetes_cluster_has_no_webhook(org, production, send, client):
    from governance.models import Target

    Target.objects.create(environment=production, name="aws", slug="aws-prod", platform="aws")

    response = client.post(
        "/integrations/kubernetes/aws-prod/admission", "{}", content_type="application/json"
    )

    assert response.status_code == 404


def test_only_post_is_answered(cluster, client):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {cluster.token}")

    assert response.status_code == 405


def test_the_cluster_token_is_answered(cluster, send, org):
    assert send(cluster, review("Pod", [UNPINNED])).status_code == 200


# --- Bodies that are not AdmissionReview v1 ----------------------------------------------------


def with_request(**changes) -> dict:
    body = review("Pod", [UNPINNED])
    body["request"].update(changes)
    return body


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"not json", "invalid", "The body is not JSON."),
        (b"[1, 2]", "invalid_review", "The body is not an AdmissionReview object."),
        (
            json.dumps({**review("Pod", [UNPINNED]), "apiVersion": "admission.k8s.io/v1beta1"}),
            "invalid_review",
            "Send apiVersion admission.k8s.io/v1 and kind AdmissionReview "
            '(admissionReviewVersions: ["v1"] in the webhook configuration).',
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "invalid_review",
            "The AdmissionReview has no request.",
        ),
        (
            json.dumps(with_request(uid="")),
            "invalid_review",
            "request.uid is missing or not a short string.",
        ),
        (
            json.dumps(with_request(uid=None)),
            "invalid_review",
            "request.uid is missing or not a short string.",
        ),
        (
            json.dumps(with_request(dryRun="yes")),
            "invalid_review",
            "request.dryRun is not a boolean.",
        ),
        (
            json.dumps(with_request(object={"spec": {"containers": {"image": "x"}}})),
            "invalid_review",
            "request.object.spec.containers is not a list.",
        ),
        (
            json.dumps(with_request(object={"spec": {"containers": [{"image": 7}]}})),
            "invalid_review",
            "request.object.spec.containers[0] is not a container with an image.",
        ),
        (
            json.dumps(with_request(object={"spec": "nope"})),
            "invalid_review",
            "request.object.spec is not an object.",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", '
            b'"request": {"uid": "a\\u0000"}}',
            "nul_character",
            None,
        ),
    ],
)
def test_a_body_that_is_not_a_review_is_a_400_and_writes_nothing(raw, code, message, cluster, send):
    before = written()

    response = send(cluster, None, raw=raw if isinstance(raw, bytes) else raw.encode())

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    if message:
        assert error["message"] == message
    assert written() == before


# --- Dry runs and replays ----------------------------------------------------------------------


def test_a_dry_run_denial_answers_the_same_and_writes_nothing(cluster, send, org):
    before = written()
    dry = review("Deployment", [UNPINNED], name="payments-api", dry_run=True)
    real = review("Deployment", [UNPINNED], name="payments-api")

    dry_answer = answer(send(cluster, dry))

    assert written() == before
    real_answer = answer(send(cluster, real))
    assert dry_answer["allowed"] is False
    assert dry_answer["status"] == real_answer["status"]


def test_a_dry_run_admission_records_nothing(cluster, approved_release, send):
    before = written()

    response = answer(send(cluster, review("Pod", [pinned(approved_release)], dry_run=True)))

    assert response["allowed"] is True
    assert written() == before


def test_a_replayed_denial_gets_the_same_answer_and_one_ledger_entry(cluster, send, org):
    body = review("Pod", [UNPINNED], name="p")

    first = answer(send(cluster, body))
    second = answer(send(cluster, body))

    assert first == second
    assert first["allowed"] is False
    assert [(e.kind, e.payload["uid"]) for e in admission_entries()] == [
        ("admission.denied", body["request"]["uid"])
    ]


def test_another_request_for_the_same_object_is_ledgered_again(cluster, send, org):
    """Each call of kube-apiserver has its own uid: a retried `kubectl apply` is a new attempt."""
    answer(send(cluster, review("Pod", [UNPINNED], name="p")))
    answer(send(cluster, review("Pod", [UNPINNED], name="p")))

    assert [e.kind for e in admission_entries()] == ["admission.denied", "admission.denied"]


def test_a_replayed_admission_keeps_one_row_and_one_entry(cluster, approved_release, send):
    body = review("Pod", [pinned(approved_release)])

    answer(send(cluster, body))
    first = Admission.objects.get()
    answer(send(cluster, body))

    again = Admission.objects.get()
    assert again.pk == first.pk
    assert again.first_admitted_at == first.first_admitted_at
    assert again.last_admitted_at >= first.last_admitted_at
    assert [e.kind for e in admission_entries()] == ["admission.admitted"]


def test_pods_of_a_rollout_update_the_admission_without_new_entries(
    cluster, approved_release, send
):
    image = pinned(approved_release)
    answer(send(cluster, review("Deployment", [image], name="payments-api")))
    pod = review("Pod", [image], name="")
    pod["request"]["object"]["metadata"] = {
        "generateName": "payments-api-7d9f8-",
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "payments-api-7d9f8",
                "controller": True,
            }
        ],
    }
    Admission.objects.update(
        last_admitted_at=Admission.objects.get().last_admitted_at.replace(year=2020)
    )

    assert answer(send(cluster, pod))["allowed"] is True

    admission = Admission.objects.get()
    assert (admission.workload, admission.last_admitted_at.year) == (
        "ReplicaSet/payments-api-7d9f8",
        admission.first_admitted_at.year,
    )
    assert [e.kind for e in admission_entries()] == ["admission.admitted"]


# --- Emergencies -------------------------------------------------------------------------------


@pytest.fixture
def emergency_pending(org, service, production, pipeline_bot):
    """An emergency change's release, not yet approved, with its exception in force."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service, production, change_type="emergency", evidence=EVIDENCE
        ),
        actor=pipeline_bot,
    )
    declare_for(release, hours=4)
    return release


def test_an_emergency_exception_admits_with_a_warning(cluster, emergency_pending, send):
    image = pinned(emergency_pending)

    response = answer(send(cluster, review("Pod", [image])))

    assert response["allowed"] is True
    assert response["warnings"] == [
        f"{image} admitted under the emergency exception of {emergency_pending.change.ref} "
        "(gate: pending); the CAB reviews it."
    ]
    assert Admission.objects.get().emergency is True
    [entry] = admission_entries()
    assert entry.payload["emergency"] is True


def test_an_emergency_release_after_its_exception_is_denied(cluster, emergency_pending, send):
    emergency = EmergencyException.objects.get(change_id=emergency_pending.change_id)
    end_emergency(emergency=emergency, actor=emergency.declared_by, reason="Checkout is back.")

    response = answer(send(cluster, review("Pod", [pinned(emergency_pending)])))

    assert response["allowed"] is False
    assert (
        f"The emergency exception for {emergency_pending.change.ref} ended at"
        in (response["status"]["message"])
    )
    assert Admission.objects.count() == 0


def test_a_rejected_emergency_release_is_denied_even_inside_its_exception(
    cluster, emergency_pending, approver, send
):
    factories.decide(emergency_pending, approver, verdict="reject", rationale="Not this build.")

    response = answer(send(cluster, review("Pod", [pinned(emergency_pending)])))

    assert response["allowed"] is False
    assert " is rejected (Rejected by alice at " in response["status"]["message"]


# --- What is not checked -----------------------------------------------------------------------


def test_a_namespace_that_is_not_governed_is_allowed_untouched(cluster, send, org):
    before = written()

    response = answer(send(cluster, review("Pod", [UNPINNED], namespace="kube-system")))

    assert response == {"uid": response["uid"], "allowed": True}
    assert written() == before


def test_delete_is_always_allowed(cluster, send, org):
    body = review("Deployment", [UNPINNED], operation="DELETE")

    assert answer(send(cluster, body)) == {"uid": body["request"]["uid"], "allowed": True}
    assert admission_entries() == []


def test_the_scale_subresource_from_the_kubernetes_docs_is_allowed(cluster, send, org):
    """The example request of the Kubernetes documentation (a Deployment's scale subresource)."""
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": "scale",
            "requestKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestSubResource": "scale",
            "name": "my-deployment",
            "namespace": "payments",
            "operation": "UPDATE",
            "userInfo": {
                "username": "admin",
                "uid": "014fbff9a07c",
                "groups": ["system:authenticated", "my-admin-group"],
                "extra": {"some-key": ["some-value1", "some-value2"]},
            },
            "object": {"apiVersion": "autoscaling/v1", "kind": "Scale"},
            "oldObject": {"apiVersion": "autoscaling/v1", "kind": "Scale"},
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
            "dryRun": False,
        },
    }

    assert answer(send(cluster, body)) == {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "allowed": True,
    }


def test_an_update_that_keeps_its_images_is_not_rechecked(cluster, send, org):
    """A scale or a label change lets nothing new in: a workload admitted before Signoff
    governed its namespace keeps running and scaling."""
    body = review("Deployment", [UNPINNED], operation="UPDATE", old_images=[UNPINNED])

    assert answer(send(cluster, body))["allowed"] is True
    assert admission_entries() == []


def test_an_update_bringing_a_new_image_is_checked(cluster, approved_release, send):
    body = review(
        "Deployment",
        [UNPINNED],
        operation="UPDATE",
        old_images=[pinned(approved_release)],
    )

    assert answer(send(cluster, body))["allowed"] is False


# --- Cost -------------------------------------------------------------------------------------


def queries_for(send, cluster, images: list[str]) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert answer(send(cluster, review("Pod", images, dry_run=True)))["allowed"] is True
    return len(captured)


# The cluster; the releases naming the digests; then per release of the environment: the
# hard freezes and the incidents holding it (the gate).
REVIEW_QUERIES = 4


def test_a_review_costs_the_same_whatever_the_number_of_containers(cluster, approved_release, send):
    image = pinned(approved_release)

    assert queries_for(send, cluster, [image]) == REVIEW_QUERIES
    assert queries_for(send, cluster, [image] * 12) == REVIEW_QUERIES


def test_each_further_release_costs_its_gate_only(cluster, approve, service, production, send):
    releases = [approve(service, production) for _ in range(3)]

    assert queries_for(send, cluster, [pinned(r) for r in releases]) == REVIEW_QUERIES + 2 * 2


def test_a_pod_of_a_running_release_costs_a_bounded_number_of_queries(
    cluster, approved_release, send
):
    """The steady state of a rollout: the admission is on record, its last time is touched."""
    image = pinned(approved_release)
    answer(send(cluster, review("Pod", [image])))

    with CaptureQueriesContext(connection) as captured:
        assert answer(send(cluster, review("Pod", [image] * 5)))["allowed"] is True

    # The review's queries, then one UPDATE touching the admission's row (no transaction).
    assert len(captured) == REVIEW_QUERIES + 1


def test_a_very_long_object_name_is_recorded_shortened(cluster, approved_release, send):
    body = review("Deployment", [pinned(approved_release)], name="x" * 400)

    assert answer(send(cluster, body))["allowed"] is True
    assert Admission.objects.get().workload == "Deployment/" + "x" * 289
