"""Kubernetes clusters and their admission webhook: registering a cluster (with the bearer
token its kube-apiserver presents) and answering an AdmissionReview.

Only the token's SHA-256 is stored; the token itself is shown once, to whoever registered the
cluster. Each answer is computed from the state now; a dry run writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from approvals.admission.decisions import ImageDecision, decide_images
from approvals.admission.models import Admission
from approvals.admission.review import ReviewRequest
from governance.exceptions import GovernanceError
from governance.ledger import services as ledger
from governance.models import Environment, LedgerEntry, Platform, Target

NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAMESPACE_MAX_LENGTH = 63
SLUG_MAX_LENGTH = 50


class InvalidCluster(GovernanceError):
    code = "invalid_cluster"


@dataclass
class Registration:
    """A registered cluster, and its token when one was issued by this registration."""

    cluster: Target
    created: bool
    token: str | None


@dataclass
class Verdict:
    """The webhook's answer, and the per-image decisions behind it."""

    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    decisions: list[ImageDecision] = field(default_factory=list)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(cluster: Target, token: str) -> bool:
    """Whether `token` is the cluster's; compared in constant time, on digests."""
    if not token or not cluster.token_digest:
        return False
    return hmac.compare_digest(token_digest(token), cluster.token_digest)


def webhook_kubeconfig(token: str) -> str:
    """The kubeconfig kube-apiserver reads to authenticate to the webhook: its user entry is
    named after the webhook's host (and port), as `AdmissionConfiguration` looks it up."""
    parts = urlsplit(settings.SITE_URL)
    # kube-apiserver looks the entry up by host, with the port unless it is https's own 443.
    host = parts.hostname or "*"
    if parts.port and not (parts.scheme == "https" and parts.port == 443):
        host = f"{host}:{parts.port}"
    return (
        f'apiVersion: v1\nkind: Config\nusers:\n- name: "{host}"\n  user:\n    token: "{token}"\n'
    )


def clean_namespaces(namespaces: list[str]) -> list[str]:
    """Namespace names as Kubernetes allows them (DNS-1123 labels), sorted, once each."""
    cleaned = sorted({n.strip() for n in namespaces if n and n.strip()})
    bad = [n for n in cleaned if len(n) > NAMESPACE_MAX_LENGTH or not NAMESPACE.match(n)]
    if bad:
        raise InvalidCluster(
            f"Not a namespace name: {', '.join(bad)} (lower-case letters, digits and '-', "
            "63 at most, starting and ending with a letter or digit).",
            fields={"namespaces": [f"Not a namespace name: {', '.join(bad)}."]},
        )
    if not cleaned:
        raise InvalidCluster(
            "Name at least one governed namespace.",
            fields={"namespaces": ["Name at least one namespace."]},
        )
    return cleaned


def register_cluster(
    *,
    name: str,
    environment: Environment,
    namespaces: list[str],
    actor: str,
    rotate_token: bool = False,
    reason: str = "",
) -> Registration:
    """Register the cluster `name` as a Kubernetes target of `environment`, or update it.

    A new cluster gets a token; an existing one keeps its token unless `rotate_token` (the
    old one then stops working at once), so re-running a registration never breaks a working
    webhook. Ledgered with the namespaces and whether a token was issued.
    """
    name, slug = _clean_name(name)
    namespaces = clean_namespaces(namespaces)
    token = None
    try:
        with transaction.atomic():
            cluster = (
                Target.objects.select_for_update()
                .filter(platform=Platform.KUBERNETES, slug=slug)
                .first()
            )
            created = cluster is None
            if created:
                cluster = Target(platform=Platform.KUBERNETES, slug=slug)
            before = _described(cluster) if not created else {}
            cluster.name, cluster.environment = name, environment
            cluster.namespaces = namespaces
            if created or rotate_token or not cluster.token_digest:
                token = secrets.token_urlsafe(32)
                cluster.token_digest = token_digest(token)
            elif before == _described(cluster):
                # The same registration again (a re-run script, a resubmitted form): no news.
                return Registration(cluster=cluster, created=False, token=None)
            cluster.save()
            _ledger_registration(cluster, created, before, token is not None, actor, reason)
    except IntegrityError:
        raise InvalidCluster(
            f"{environment.name} already has a target with the slug {slug}; choose another name.",
            fields={"name": [f"The slug {slug} is taken in {environment.name}."]},
        ) from None
    return Registration(cluster=cluster, created=created, token=token)


def _clean_name(name: str) -> tuple[str, str]:
    name = (name or "").strip()
    slug = slugify(name)
    if not slug or len(name) > 100 or len(slug) > SLUG_MAX_LENGTH or not name.isprintable():
        raise InvalidCluster(
            "A cluster's name is 1 to 100 printable characters giving a slug of 50 at most "
            "(letters, digits, '-').",
            fields={"name": ["Give a short name such as prod-eu-1."]},
        )
    return name, slug


def _described(cluster: Target) -> dict:
    return {
        "name": cluster.name,
        "environment": cluster.environment.slug,
        "namespaces": list(cluster.namespaces),
    }


def _ledger_registration(
    cluster: Target, created: bool, before: dict, token_issued: bool, actor: str, reason: str
) -> None:
    after = _described(cluster)
    ledger.append(
        kind="cluster.registered" if created else "cluster.updated",
        subject=f"cluster:{cluster.slug}",
        actor=actor,
        payload={
            **after,
            "cluster": cluster.slug,
            "changed": sorted(k for k in after if before.get(k) != after[k]) if before else [],
            "token_issued": token_issued,
            "reason": reason,
        },
    )


# --- The webhook ---------------------------------------------------------------------------------


def review_admission(
    *, cluster: Target, review: ReviewRequest, now: datetime | None = None
) -> Verdict:
    """Decide an AdmissionReview for `cluster` and record it (unless it is a dry run).

    Pods and workload templates in governed namespaces are checked image by image; anything
    else is allowed untouched. A denial is ledgered once per request uid (a replayed review
    gets the same answer from the same state, and no second entry); an admission updates the
    release's row for this cluster, and the first one into a cluster is ledgered.
    """
    now = now or timezone.now()
    if not _governed(cluster, review):
        return Verdict(allowed=True)
    decisions = decide_images(review.new_images, cluster.environment, now)
    denied = [d for d in decisions if not d.allowed]
    verdict = Verdict(
        allowed=not denied,
        message=_denial_message(cluster, review, denied) if denied else "",
        warnings=[d.reason for d in decisions if d.allowed and d.reason],
        decisions=decisions,
    )
    if review.dry_run or not decisions:
        return verdict  # sideEffects: NoneOnDryRun
    if denied:
        with transaction.atomic():
            _ledger_denial(cluster, review, decisions)
    else:
        _record_admissions(cluster, review, decisions, now)
    return verdict


def _governed(cluster: Target, review: ReviewRequest) -> bool:
    return (
        review.operation in ("CREATE", "UPDATE")
        and review.governed_kind
        and review.namespace in cluster.namespaces
    )


def _denial_message(cluster: Target, review: ReviewRequest, denied: list[ImageDecision]) -> str:
    where = f"{review.workload} in {review.namespace} ({cluster.name}, {cluster.environment.name})"
    return f"Signoff denied {where}: " + " ".join(d.reason for d in denied)


def _actor(review: ReviewRequest) -> str:
    # The person (or controller) whose request it was, as kube-apiserver authenticated them.
    return (review.user or "kube-apiserver")[:150]


def _ledger_denial(cluster: Target, review: ReviewRequest, decisions: list) -> None:
    subject = f"cluster:{cluster.slug}"
    # kube-apiserver gives every call its own uid: one seen before is a replay, already on record.
    if LedgerEntry.objects.filter(
        subject=subject, kind="admission.denied", payload__uid=review.uid
    ).exists():
        return
    ledger.append(
        kind="admission.denied",
        subject=subject,
        actor=_actor(review),
        payload={
            "uid": review.uid,
            "cluster": cluster.slug,
            "environment": cluster.environment.slug,
            "namespace": review.namespace,
            "operation": review.operation,
            "object": f"{review.kind}/{review.name}",
            "workload": review.workload,
            "images": [d.image for d in decisions],
            "reasons": [d.reason for d in decisions if not d.allowed],
        },
    )


def _record_admissions(
    cluster: Target, review: ReviewRequest, decisions: list[ImageDecision], now: datetime
) -> None:
    """Upsert one row per admitted release; ledger the first admission of each into the
    cluster, and an admission under an emergency exception the first time it happens."""
    admitted = {d.release.pk: d for d in decisions if d.release is not None}
    # One statement, atomic by itself: the common case, a pod of a release already running
    # here (every pod of a rollout), touches its row and needs no transaction and no entry.
    touched = Admission.objects.filter(cluster=cluster, release_id__in=admitted).update(
        last_admitted_at=now, namespace=review.namespace, workload=_workload(review)
    )
    if touched == len(admitted) and not any(d.emergency for d in admitted.values()):
        return
    with transaction.atomic():
        known = set(
            Admission.objects.filter(cluster=cluster, release_id__in=admitted).values_list(
                "release_id", flat=True
            )
        )
        for release_id, decision in admitted.items():
            first = release_id not in known and _created(cluster, review, decision, now)
            flipped = (
                decision.emergency
                and release_id in known
                and _flagged_emergency(cluster, release_id)
            )
            if first or flipped:
                _ledger_admission(cluster, review, decision)


def _workload(review: ReviewRequest) -> str:
    # Names are the API server's to bound; the column's size must never turn into a 500.
    return review.workload[: Admission._meta.get_field("workload").max_length]


def _created(
    cluster: Target, review: ReviewRequest, decision: ImageDecision, now: datetime
) -> bool:
    release = decision.release
    try:
        # A savepoint: pods of one rollout race to be first; the loser's row already exists.
        with transaction.atomic():
            Admission.objects.create(
                cluster=cluster,
                release=release,
                digest=release.digest,
                namespace=review.namespace,
                workload=_workload(review),
                first_admitted_at=now,
                last_admitted_at=now,
                emergency=decision.emergency,
            )
    except IntegrityError:
        return False
    return True


def _flagged_emergency(cluster: Target, release_id: int) -> bool:
    # Conditional: only the request that flips the flag ledgers it.
    return bool(
        Admission.objects.filter(cluster=cluster, release_id=release_id, emergency=False).update(
            emergency=True
        )
    )


def _ledger_admission(cluster: Target, review: ReviewRequest, decision: ImageDecision) -> None:
    release = decision.release
    ledger.append(
        kind="admission.admitted",
        subject=f"cluster:{cluster.slug}",
        actor=_actor(review),
        payload={
            "uid": review.uid,
            "cluster": cluster.slug,
            "environment": cluster.environment.slug,
            "service": release.service_slug,
            "release": release.pk,
            "version": release.version_ref,
            "digest": release.digest,
            "image": decision.image,
            "namespace": review.namespace,
            "workload": review.workload,
            "emergency": decision.emergency,
        },
    )
