"""Demo pipeline integrations: repositories mapped to services, clusters registered, the
approved payments release admitted into production's clusters, and a GitLab deployment waiting
on the payments hotfix. Idempotent: a second run changes nothing."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.admission.review import read_review
from approvals.admission.services import register_cluster, review_admission
from approvals.models import Admission, PipelineWait, Release, RepositoryMapping
from approvals.pipelines.events import gitlab_run
from approvals.pipelines.services import map_repository, receive_run
from governance.models import Environment, Service

ACTOR = "seed_demo"
REPOSITORIES = [
    ("github", "acme/payments-api", "payments-api"),
    ("gitlab", "payments/payments-api", "payments-api"),
    ("gitlab", "web/web-frontend", "web-frontend"),
    ("gitlab", "search/search-api", "search-api"),
]
# name, environment, governed namespaces
CLUSTERS = [
    ("prod-eu-1", "production", ["payments", "web"]),
    ("prod-us-1", "production", ["payments"]),
    ("staging-eu-1", "staging", ["payments", "web", "search"]),
]
# The demo's approved production release of payments-api runs in both production clusters.
ADMITTED = ("demo-pay-240-prod", ["prod-eu-1", "prod-us-1"])
WAITING = "demo-pay-241-hf-prod"


class Command(BaseCommand):
    help = "Map the demo's repositories, register its clusters and admit its releases."

    def handle(self, *args, **options) -> None:
        services = {s.slug: s for s in Service.objects.all()}
        mapped = set(RepositoryMapping.objects.values_list("provider", "repository"))
        for provider, repository, slug in REPOSITORIES:
            if (provider, repository) in mapped:
                continue
            map_repository(
                provider=provider, repository=repository, service=services[slug], actor=ACTOR
            )
        clusters = {}
        for name, environment, namespaces in CLUSTERS:
            registration = register_cluster(
                name=name,
                environment=Environment.objects.get(slug=environment),
                namespaces=namespaces,
                actor=ACTOR,
                reason="Demo cluster",
            )
            clusters[name] = registration.cluster
        admitted = self._admit(clusters)
        waiting = self._waiting_run()
        # The demo's health check is Signoff's own liveness URL: its deployments verify.
        Service.objects.filter(slug="payments-api", health_urls=[]).update(
            health_urls=[f"{settings.SITE_URL}/healthz"]
        )
        self.stdout.write(
            f"Demo integrations: {len(REPOSITORIES)} repositories mapped, {len(clusters)} "
            f"clusters, {admitted} new admissions, {waiting} new waiting pipeline runs."
        )

    def _admit(self, clusters: dict) -> int:
        key, names = ADMITTED
        release = Release.objects.filter(idempotency_key=key).first()
        if release is None:
            return 0
        count = 0
        for name in names:
            cluster = clusters[name]
            if Admission.objects.filter(cluster=cluster, release=release).exists():
                continue
            review = read_review(_deployment_review(release, "payments"))
            review_admission(cluster=cluster, review=review)
            count += 1
        return count

    def _waiting_run(self) -> int:
        release = Release.objects.filter(idempotency_key=WAITING).first()
        if release is None or PipelineWait.objects.filter(release=release).exists():
            return 0
        event = gitlab_run(
            {
                "object_kind": "deployment",
                "status": "blocked",
                "deployment_id": 5021,
                "environment": "production",
                "deployable_url": release.pipeline_run_url,
                "project": {"id": 30, "path_with_namespace": "payments/payments-api"},
                "commit_url": "https://gitlab.example.com/payments/payments-api/-/commit/"
                + "4f1c2e9a7b3d5f60819a2b3c4d5e6f7081920a1b",
                "user": {"username": "dave"},
            }
        )
        with transaction.atomic():
            outcome = receive_run(event=event, delivery_id=f"demo-{WAITING}")
        return int(outcome.status == "linked")


def _deployment_review(release: Release, namespace: str) -> dict:
    """The AdmissionReview kube-apiserver sends when the release's Deployment is created."""
    name = release.service.slug
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE",
            "namespace": namespace,
            "name": name,
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": name, "image": f"{release.image}@{release.digest}"}
                            ]
                        }
                    }
                },
            },
            "dryRun": False,
        },
    }
