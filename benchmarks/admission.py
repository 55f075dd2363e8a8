"""What the Kubernetes admission webhook costs: `POST /integrations/kubernetes/<cluster>/admission`
as kube-apiserver calls it, against the seeded benchmark database.

A cluster is registered (or its token rotated) in the environment holding the most releases the
gate approves now; AdmissionReview v1 documents then go through django.test.Client in-process,
like the gate's measurement: a pod whose three containers run three approved digests (admitted:
the promotion rows are upserted, as for every pod of a rollout), and a Deployment pinned by tag
only, as a dry run (denied, nothing written, so the ledger does not grow run after run).
Latencies are p50/p95 in milliseconds; queries are counted in a separate pass. The budget is the
gate's own, far under kube-apiserver's 10 s default timeout and the manifest's 5 s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.admission.services import register_cluster
from approvals.gate import evaluate_gate
from approvals.models import Release
from benchmarks.measure import Timing

CLUSTER = "bench-cluster"
NAMESPACE = "bench"
WARMUP = 20
QUERY_SAMPLES = 10
CANDIDATES = 300  # newest approved requests looked at to find releases the gate approves now


def measure_admission(requests: int) -> list[Timing]:
    """Admitted pods naming one and three releases, and a denied dry-run Deployment; n/a with
    the error."""
    names = (
        "Admission webhook, admitted pod (1 approved image)",
        "Admission webhook, admitted pod (3 approved images)",
        "Admission webhook, denied Deployment (tag only, dry run)",
    )
    try:
        releases = approved_now()
        if not releases:
            return [Timing(name, error="no release the gate approves now") for name in names]
        token = register_cluster(
            name=CLUSTER,
            environment=releases[0].environment,
            namespaces=[NAMESPACE],
            rotate_token=True,
            actor="benchmark",
            reason="make bench",
        ).token
    except Exception as exc:  # report, never crash the run
        return [Timing(name, error=f"{type(exc).__name__}: {exc}"[:300]) for name in names]
    client = Client(headers={"authorization": f"Bearer {token}"})
    images = [f"{r.image}@{r.digest}" for r in releases]
    one = _timing(names[0], client, lambda: _review("Pod", images[:1]), True, requests)
    three = _timing(names[1], client, lambda: _review("Pod", images), True, requests)
    unpinned = [f"{releases[0].image}:latest"]
    denied = _timing(
        names[2], client, lambda: _review("Deployment", unpinned, dry_run=True), False, requests
    )
    return [one, three, denied]


def approved_now() -> list[Release]:
    """Up to three releases of one environment whose gate says approved now, with distinct
    digests: the environment with most of them among the newest approved requests."""
    now = timezone.now()
    found: dict[int, dict[str, Release]] = {}
    newest = (
        Release.objects.for_gate().filter(approval__status="approved").order_by("-pk")[:CANDIDATES]
    )
    for release in newest:
        if evaluate_gate(release, now=now).status == "approved":
            found.setdefault(release.environment_id, {}).setdefault(release.digest, release)
    if not found:
        return []
    counts = Counter({env: len(by_digest) for env, by_digest in found.items()})
    environment_id = counts.most_common(1)[0][0]
    ids = [r.pk for r in list(found[environment_id].values())[:3]]
    return list(Release.objects.select_related("environment").filter(pk__in=ids).order_by("pk"))


def _review(kind: str, images: list[str], *, dry_run: bool = False) -> bytes:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    spec = {"containers": containers}
    template = {"metadata": {"labels": {"app": "bench"}}, "spec": spec}
    obj = {"spec": spec} if kind == "Pod" else {"spec": {"replicas": 3, "template": template}}
    obj["metadata"] = {"name": "bench", "namespace": NAMESPACE}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "" if kind == "Pod" else "apps", "version": "v1", "kind": kind},
        "name": "bench",
        "namespace": NAMESPACE,
        "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj,
        "dryRun": dry_run,
    }
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(body).encode()


def _post(client: Client, body: bytes, allowed: bool) -> float:
    started = time.perf_counter()
    response = client.post(
        f"/integrations/kubernetes/{CLUSTER}/admission", body, content_type="application/json"
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or response.json()["response"]["allowed"] is not allowed:
        raise RuntimeError(f"answered {response.status_code}: {response.content[:300]!r}")
    return elapsed


def _timing(name: str, client: Client, body, allowed: bool, requests: int) -> Timing:
    timing = Timing(name)
    try:
        for _ in range(WARMUP):
            _post(client, body(), allowed)
        timing.samples = [_post(client, body(), allowed) for _ in range(requests)]
        for _ in range(QUERY_SAMPLES):
            with CaptureQueriesContext(connection) as captured:
                _post(client, body(), allowed)
            timing.queries.append(len(captured))
    except Exception as exc:  # report, never crash the run
        timing.samples, timing.error = [], f"{type(exc).__name__}: {exc}"[:300]
    return timing
