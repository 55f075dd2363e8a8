"""Fixtures of Kubernetes admission: a registered cluster, approved releases, and the
AdmissionReview documents kube-apiserver sends (admission.k8s.io/v1, shaped as in the
Kubernetes documentation)."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest

from approvals import services
from approvals.admission.services import register_cluster
from approvals.models import ApprovalRequest, Release
from governance.models import LedgerEntry
from tests import factories

CLUSTER = "prod-eu-1"
URL = f"/integrations/kubernetes/{CLUSTER}/admission"
_names = itertools.count(1)
EVIDENCE = (
    {"kind": "tests", "status": "passed", "summary": {"passed": 10, "failed": 0}},
    {"kind": "security_scan", "status": "passed", "summary": {"critical": 0, "high": 0}},
)


@pytest.fixture
def cluster(org, production):
    """prod-eu-1, a production cluster governing the payments and checkout namespaces; the
    test-visible `token` attribute holds its bearer token."""
    registration = register_cluster(
        name=CLUSTER,
        environment=production,
        namespaces=["payments", "checkout"],
        actor="test",
    )
    registration.cluster.token = registration.token
    return registration.cluster


@pytest.fixture
def approve(org, pipeline_bot, approver, second_approver, cab_member):
    """`approve(service, environment, image=..., digest=...)`: a release requested by the
    pipeline and approved by everyone its plan asks for."""

    def make(service, environment, **overrides) -> Release:
        # A production cluster is a Kubernetes target: the built-in policy then asks for a scan.
        overrides.setdefault("evidence", EVIDENCE)
        release, _ = services.request_approval(
            data=factories.release_input(service, environment, **overrides), actor=pipeline_bot
        )
        for person in (approver, second_approver, cab_member):
            if ApprovalRequest.objects.get(release=release).status != "pending":
                break
            factories.decide(release, person)
        assert ApprovalRequest.objects.get(release=release).status == "approved"
        return release

    return make


@pytest.fixture
def approved_release(approve, service, production):
    """payments-api to production, approved: registry.example.com/payments-api@<digest>."""
    return approve(service, production)


@pytest.fixture
def pending_release(org, service, production, pipeline_bot):
    """payments-api to production with its evidence, waiting for its approvers."""
    release, _ = services.request_approval(
        data=factories.release_input(service, production, evidence=EVIDENCE), actor=pipeline_bot
    )
    return release


def pinned(release: Release) -> str:
    return f"{release.image}@{release.digest}"


def pod_spec(images: list[str], init: list[str] = (), ephemeral: list[str] = ()) -> dict:
    def containers(names: list[str], prefix: str) -> list[dict]:
        return [
            {"name": f"{prefix}{i}", "image": image, "ports": [{"containerPort": 8080}]}
            for i, image in enumerate(names)
        ]

    spec: dict = {"containers": containers(images, "app"), "restartPolicy": "Always"}
    if init:
        spec["initContainers"] = containers(list(init), "init")
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"debugger{i}", "image": image, "targetContainerName": "app0"}
            for i, image in enumerate(ephemeral)
        ]
    return spec


RESOURCES = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
}


def workload(kind: str, name: str, spec: dict, namespace: str = "payments") -> dict:
    """The object as a client sends it, with the pod spec where its kind keeps it."""
    group, version, _ = RESOURCES[kind]
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    body = {
        "Pod": spec,
        "Deployment": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
        "StatefulSet": {
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
        "DaemonSet": {"selector": {"matchLabels": {"app": name}}, "template": template},
        "ReplicaSet": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
        "Job": {
            "backoffLimit": 2,
            "template": {**template, "spec": {**spec, "restartPolicy": "Never"}},
        },
        "CronJob": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {"template": {**template, "spec": {**spec, "restartPolicy": "Never"}}}
            },
        },
    }[kind]
    return {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": body,
    }


def review(
    kind: str = "Pod",
    images: list[str] = (),
    *,
    namespace: str = "payments",
    name: str | None = None,
    operation: str = "CREATE",
    uid: str | None = None,
    dry_run: bool = False,
    init: list[str] = (),
    ephemeral: list[str] = (),
    old_images: list[str] | None = None,
    obj: dict | None = None,
) -> dict:
    """An AdmissionReview v1 request as kube-apiserver sends it for `kind`."""
    group, version, resource = RESOURCES.get(kind, ("", "v1", kind.lower() + "s"))
    name = name or f"{kind.lower()}-{next(_names)}"
    request = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "dave@example.com",
            "uid": "014fbff9a07c",
            "groups": ["system:authenticated", "payments-deployers"],
        },
        "object": obj
        if obj is not None
        else (
            workload(kind, name, pod_spec(list(images), init, ephemeral), namespace)
            if kind in RESOURCES
            else {}
        ),
        "oldObject": None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if old_images is not None:
        request["oldObject"] = workload(kind, name, pod_spec(list(old_images)), namespace)
        request["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
    if operation == "DELETE":
        request["oldObject"], request["object"] = request["object"], None
        request["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.fixture
def send(client):
    """`send(cluster, body, token=...)` → the response of POSTing an AdmissionReview."""

    def post(target, body, *, token: str | None = None, raw: bytes | None = None, url: str = ""):
        headers = {}
        token = target.token if token is None else token
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body)
        return client.post(
            url or f"/integrations/kubernetes/{target.slug}/admission",
            data,
            content_type="application/json",
            **headers,
        )

    return post


def answer(response) -> dict:
    """The AdmissionReview's `response`, after checking the envelope kube-apiserver needs."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    return body["response"]


def admission_entries() -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(kind__startswith="admission.").order_by("seq"))
