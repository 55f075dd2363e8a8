"""The model's steps about Kubernetes clusters asking the admission webhook whether an image may
run: kube-apiserver sends AdmissionReviews (pods and deployments, created or updated, some dry
runs, some sent again) with its bearer token, others come with a wrong one; administrators
register production's cluster, or register one again and rotate its token.

Staging's and dev's clusters are registered when an example starts. Production's is registered
by a step: a Kubernetes target in production makes the built-in policy ask production releases
for a security scan, which the model's pipelines do not send, so from the start it would keep
every production release of the default policy blocked.

What each review sent and what it was answered is kept in `cluster_checks.Reviews` and judged
after the step by `cluster_checks.check_clusters`.
"""

from __future__ import annotations

import dataclasses
import json

from django.db.models import Max, Q
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from approvals.admission.models import Admission
from approvals.admission.services import register_cluster
from approvals.models import Release
from governance.models import Environment, LedgerHead
from tests import factories
from tests.approvals.admission.conftest import review as admission_review
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.cluster_checks import Cluster, Image, Reviews, Sent
from tests.invariants.drawing import release_indexes, tally
from tests.invariants.organisation import BOT, SERVICES

CLUSTERS = {"staging": "staging-eu-1", "dev": "dev-eu-1", "production": "prod-eu-1"}
GOVERNED = ("payments", "web")
UNGOVERNED = "sandbox"
# How an image is written: as its release names it, the same digest under another repository,
# the repository with a digest no release names, or the repository by tag only.
IMAGES = ("release", "another repository", "another digest", "tag")
OPERATIONS = ("CREATE", "UPDATE", "UPDATE (scale)")  # a scale brings no new image in
KEPT = 6  # reviews kept for sending again in a later step


class ClusterSteps:
    """Clusters ask the admission webhook (mixed into `model.Organisation`)."""

    def setup_cluster(self) -> None:
        """Staging's and dev's clusters, each governing the payments and web namespaces."""
        self.admission = Reviews()
        self.record.admission = self.admission  # what `check_clusters` judges
        self.retired_tokens: list[str] = []
        self.review_bodies: list[tuple[Sent, dict]] = []
        self.reviews_sent = 0
        for environment in ("staging", "dev"):
            self._register(environment, rotate=False)
        self.admission.seen_seq = LedgerHead.objects.get(pk=1).seq
        self.admission.seen_admission = Admission.objects.aggregate(last=Max("pk"))["last"] or 0

    def _register(self, environment: str, *, rotate: bool) -> None:
        slug = CLUSTERS[environment]
        registration = self.attempt(
            "cluster registration",
            lambda: register_cluster(
                name=slug,
                environment=Environment.objects.get(slug=environment),
                namespaces=list(GOVERNED),
                actor="ada",
                rotate_token=rotate,
                reason="Registered by the model",
            ),
        )
        if registration is None or registration.token is None:
            return
        known = self.admission.clusters.get(slug)
        if known is not None:
            self.retired_tokens.append(known.token)
        target = registration.cluster
        self.admission.clusters[slug] = Cluster(
            slug, target.pk, target.environment_id, GOVERNED, registration.token
        )

    @rule(environment=st.sampled_from(("production", "staging")), rotate=st.booleans())
    def register_a_cluster(self, environment: str, rotate: bool) -> None:
        """An administrator registers production's cluster, or registers a cluster again: the
        same registration changes nothing; a rotated token retires the old one at once."""
        self.step("register_a_cluster")
        self._register(environment, rotate=rotate)

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        # Repeated values are likelier: most reviews are of governed pods being created.
        which=st.sampled_from(("approved", "approved", "any")),
        image=st.sampled_from(("release", *IMAGES)),
        where=st.sampled_from(("its own", "its own", "another")),
        namespace=st.sampled_from(("governed", "governed", "ungoverned")),
        kind=st.sampled_from(("Pod", "Deployment")),
        operation=st.sampled_from(("CREATE", *OPERATIONS)),
        dry_run=st.booleans(),
        sidecar=st.sampled_from((None, "next release", "tag")),
        again=st.sampled_from(("no", "at once", "an earlier review")),
    )
    def cluster_admits(
        self, release, which, image, where, namespace, kind, operation, dry_run, sidecar, again
    ) -> None:
        """A cluster's kube-apiserver asks whether a pod or a deployment may run: its image is a
        release's (mostly an approved one), sent to the cluster of the release's environment or
        another's, maybe under another repository or digest or by tag, maybe with a sidecar;
        created or updated, maybe a dry run; sometimes sent again at once, or an earlier
        review sent again (kube-apiserver retrying)."""
        self.step("cluster_admits")
        if again == "an earlier review" and self.review_bodies:
            template, body = self.review_bodies[release % len(self.review_bodies)]
            sent = dataclasses.replace(template, allowed=False, warnings=[], changed=[])
            self._send(sent, body)
            tally["admission: sent again later"] += 1
            return
        target = self._pick(release, which)
        cluster = self._cluster_for(target, where, release)
        images = [self._image(target, image)]
        if sidecar == "tag":
            images.append(Image("busybox:1.36", "busybox", None))
        elif sidecar == "next release":
            images.append(self._image(self._pick(release + 1, "any"), "release"))
        inside = GOVERNED[release % 2] if namespace == "governed" else UNGOVERNED
        self._review(target, cluster, images, inside, kind, operation, dry_run, again)

    @precondition(lambda self: self.releases)
    @rule(
        pick=release_indexes,
        kind=st.sampled_from(("Pod", "Deployment")),
        dry_run=st.booleans(),
        again=st.sampled_from(("no", "at once")),
    )
    def cluster_runs_what_was_approved(
        self, pick: int, kind: str, dry_run: bool, again: str
    ) -> None:
        """The common case: a pod or a deployment of a release whose request was approved (or
        whose change was declared an emergency) asks the cluster of its environment, by the
        image and digest the release names; the gate's answer now decides (a freeze or an
        expiry since denies it). With no such release yet, the pipeline first asks for one to
        dev (approved at once by the built-in policy) and deploys it."""
        self.step("cluster_runs_what_was_approved")
        clusters = {c.environment_id: c for c in self.admission.clusters.values()}
        target = self._approved(pick, clusters)
        if target is None:
            service = SERVICES[pick % len(SERVICES)]
            self.request_release(BOT, service, "dev", "", None, "normal", "passed", False, None)
            target = self._approved(pick, clusters)
        if target is None:
            return
        cluster = clusters[target.environment_id]
        image = self._image(target, "release")
        self._review(target, cluster, [image], GOVERNED[pick % 2], kind, "CREATE", dry_run, again)

    def _approved(self, pick: int, clusters: dict[int, Cluster]) -> Release | None:
        """A release of an environment with a cluster, approved or of a declared emergency."""
        pks = list(
            Release.objects.filter(pk__in=self.releases, environment_id__in=clusters)
            .filter(Q(approval__status="approved") | Q(change__emergency__isnull=False))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not pks:
            return None
        return Release.objects.select_related("service").get(pk=pks[pick % len(pks)])

    def _review(
        self,
        target: Release,
        cluster: Cluster,
        images: list[Image],
        namespace: str,
        kind: str,
        operation: str,
        dry_run: bool,
        again: str,
    ) -> None:
        """Send a review of `target`'s workload with `images` (and again at once if asked);
        keep it for sending again later."""
        written = [i.written for i in images]
        old = {"CREATE": None, "UPDATE": [f"{target.image}:previous"], "UPDATE (scale)": written}
        self.reviews_sent += 1
        uid = f"model-review-{self.reviews_sent}"
        body = admission_review(
            kind,
            written,
            namespace=namespace,
            name=f"{target.service.slug}-{target.pk}",
            operation=operation.split()[0],
            uid=uid,
            dry_run=dry_run,
            old_images=old[operation],
        )
        previous = old[operation] or []
        new = list({i.written: i for i in images if i.written not in previous}.values())
        sent = Sent(uid, cluster.slug, namespace, new, dry_run)
        self._send(sent, body)
        if again == "at once":
            self._send(dataclasses.replace(sent, again=True, changed=[]), body)
        self.review_bodies = [*self.review_bodies, (sent, body)][-KEPT:]

    def _pick(self, index: int, which: str) -> Release:
        """The release at `index`, or (for "approved") the one at `index` among those whose
        request is approved, when there is one."""
        pks = self.releases
        if which == "approved":
            approved = list(
                Release.objects.filter(pk__in=pks, approval__status="approved")
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            pks = approved or pks
        pk = pks[index % len(pks)]
        return Release.objects.select_related("service").get(pk=pk)

    def _cluster_for(self, release: Release, where: str, index: int) -> Cluster:
        """The cluster of the release's environment ("its own", when registered), or another."""
        clusters = sorted(self.admission.clusters.values(), key=lambda c: c.slug)
        own = [c for c in clusters if c.environment_id == release.environment_id]
        others = [c for c in clusters if c.environment_id != release.environment_id]
        pool = own if where == "its own" and own else others or own
        return pool[index % len(pool)]

    def _image(self, release: Release, how: str) -> Image:
        repository = release.image
        if how == "release":
            return Image(f"{repository}@{release.digest}", repository, release.digest)
        if how == "another repository":
            mirror = f"registry.example.com/mirror/{release.service.slug}"
            return Image(f"{mirror}@{release.digest}", mirror, release.digest)
        if how == "another digest":
            digest = factories.digest(f"never-released-{release.pk}")
            return Image(f"{repository}@{digest}", repository, digest)
        return Image(f"{repository}:{release.version}", repository, None)

    def _send(self, sent: Sent, body: dict) -> None:
        """POST the review with the cluster's token; keep what it answered and wrote."""
        before = fingerprint.take()
        response = self.client.post(
            f"/integrations/kubernetes/{sent.cluster}/admission",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {self.admission.clusters[sent.cluster].token}",
        )
        require(
            response.status_code == 200,
            19,
            f"review {sent.uid} answered {response.status_code}: {response.content[:300]!r}",
        )
        answer = response.json()["response"]
        require(answer["uid"] == sent.uid, 19, f"review {sent.uid} answered as {answer['uid']}")
        sent.allowed = answer["allowed"] is True
        sent.warnings = answer.get("warnings", [])
        sent.message = answer.get("status", {}).get("message", "")
        sent.changed = fingerprint.changed(before)
        self.admission.sent.append(sent)
        if sent.namespace not in GOVERNED or not sent.new:
            outcome = "not looked at"
        elif sent.allowed:
            outcome = "admitted in an emergency" if sent.warnings else "admitted"
        else:
            outcome = "denied"
        tally[f"admission: {outcome}"] += 1
        if sent.dry_run:
            tally[f"admission: dry run, {outcome}"] += 1
        if sent.again:
            tally[f"admission: sent again at once, {outcome}"] += 1

    @precondition(lambda self: self.releases)
    @rule(
        environment=st.sampled_from(("staging", "dev", "production")),
        token=st.sampled_from(("another cluster's", "retired", "made up", "none", "no cluster")),
        release=release_indexes,
    )
    def cluster_with_a_wrong_token(self, environment: str, token: str, release: int) -> None:
        """A review comes with another cluster's token, a rotated-out one, a made-up one or
        none (401), or for a cluster nobody registered (404): nothing is written."""
        self.step("cluster_with_a_wrong_token")
        slug = CLUSTERS[environment]
        clusters = self.admission.clusters
        if slug not in clusters:
            slug = CLUSTERS["staging"]
        others = [c.token for s, c in sorted(clusters.items()) if s != slug]
        key = {
            "another cluster's": others[0] if others else "",
            "retired": self.retired_tokens[-1] if self.retired_tokens else "",
            "made up": "not-a-cluster-token",
        }.get(token, "")
        if not key and token != "no cluster":
            token = "none"
        target = self.release(release)
        body = admission_review("Pod", [f"{target.image}@{target.digest}"], uid="model-stranger")
        url = f"/integrations/kubernetes/{'nowhere' if token == 'no cluster' else slug}/admission"
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        before = fingerprint.take()
        response = self.client.post(url, json.dumps(body), content_type="application/json", **auth)
        status = 404 if token == "no cluster" else 401
        require(
            response.status_code == status,
            19,
            f"a review with {token} token answered {response.status_code}, not {status}",
        )
        changed = fingerprint.changed(before)
        require(not changed, 19, f"a review with {token} token changed {changed}")
        tally[f"admission: {token} token refused"] += 1
