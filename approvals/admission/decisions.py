"""Which release, if any, lets an image into a cluster: the read side of admission.

An image is admitted when it is pinned by a sha256 digest and a release of the cluster's
environment names that digest and the same repository (both normalised as Docker does), and
the gate approves that release now. A release whose change holds an emergency exception in
force lets its image in even before approval, with a warning (never after a rejection: a person
said no). Everything else is denied with words naming the image and the way to get it approved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import F

from approvals.admission.images import (
    SHA256_DIGEST,
    InvalidImage,
    normalised_repository,
    parse_image,
)
from approvals.gate import GateResult, emergency_standing, evaluate_gate
from approvals.models import ApprovalRequest, Release
from changes.models import ChangeRecord
from governance.models import Environment


@dataclass
class ImageDecision:
    """The answer for one image: let in (by which release) or not, and the words for people."""

    image: str
    allowed: bool
    reason: str = ""
    release: Release | None = None
    emergency: bool = False


def decide_images(
    images: list[str], environment: Environment, now: datetime
) -> list[ImageDecision]:
    """One decision per image, in order. One query finds this environment's releases naming
    the images' digests (the gate then runs for each); a second, for denials only, finds where
    else a digest was requested, to name the service to request approval for."""
    parsed: dict[str, object] = {}
    for image in images:
        try:
            parsed[image] = parse_image(image)
        except InvalidImage as exc:
            parsed[image] = exc
    digests = {
        p.digest
        for p in parsed.values()
        if not isinstance(p, Exception) and SHA256_DIGEST.match(p.digest)
    }
    here = _candidates(digests, environment)
    elsewhere = _requested_elsewhere(digests - set(here))
    return [_decide(image, parsed[image], environment, here, elsewhere, now) for image in images]


def _candidates(digests: set[str], environment: Environment) -> dict[str, list[Release]]:
    """This environment's releases naming these digests, newest first, loaded as the gate
    reads them (one row each with its change and approval request), plus the few fields the
    messages and records name."""
    found: dict[str, list[Release]] = defaultdict(list)
    if not digests:
        return found
    releases = (
        Release.objects.for_gate()
        .filter(environment_id=environment.pk, digest__in=sorted(digests))
        .annotate(image_ref=F("image"), service_slug=F("service__slug"), version_ref=F("version"))
        .order_by("-created_at", "-pk")
    )
    for release in releases:
        found[release.digest].append(release)
    return found


def _requested_elsewhere(digests: set[str]) -> dict[str, dict]:
    """The newest release naming each digest in any other environment (the same artifact on
    its way through the promotion path): its id, service and environment."""
    if not digests:
        return {}
    rows = (
        Release.objects.filter(digest__in=sorted(digests))
        .order_by("-created_at", "-pk")
        .values("pk", "digest", "service__slug", "environment__name")
    )
    found: dict[str, dict] = {}
    for row in rows:
        found.setdefault(row["digest"], row)
    return found


def _decide(
    image: str,
    parsed: object,
    environment: Environment,
    here: dict[str, list[Release]],
    elsewhere: dict[str, dict],
    now: datetime,
) -> ImageDecision:
    if isinstance(parsed, InvalidImage):
        return ImageDecision(image, False, f"{image}: {parsed}")
    if not parsed.pinned:
        return ImageDecision(
            image,
            False,
            f"{image} is not pinned by digest: deploy {parsed.repository}@sha256:<digest> with "
            f"the digest of a release approved for {environment.name}.",
        )
    if not SHA256_DIGEST.match(parsed.digest):
        return ImageDecision(
            image, False, f"{image}: only sha256 digests are approved (sha256:<64 hex>)."
        )
    candidates = here.get(parsed.digest, [])
    matching = [r for r in candidates if normalised_repository(r.image_ref) == parsed.repository]
    if matching:
        return _decide_candidates(image, matching, environment, now)
    if candidates:
        named = normalised_repository(candidates[0].image_ref)
        reason = (
            f"{image}: digest {parsed.digest[7:19]} was requested for {environment.name} as "
            f"{named}, not {parsed.repository}; deploy it by the repository its release names."
        )
        return ImageDecision(image, False, reason)
    return ImageDecision(
        image, False, _unknown_reason(image, parsed, environment, elsewhere.get(parsed.digest))
    )


def _decide_candidates(
    image: str, candidates: list[Release], environment: Environment, now: datetime
) -> ImageDecision:
    """The newest approved candidate admits; else one inside an emergency exception does,
    with a warning; else the newest candidate's gate explains the denial."""
    results = [(release, _gate(release, now)) for release in candidates]
    for release, result in results:
        if result.status == "approved":
            emergency = _in_emergency(release, now)
            warning = _emergency_warning(image, release, result) if emergency else ""
            return ImageDecision(image, True, warning, release, emergency)
    for release, result in results:
        if result.status != "rejected" and _in_emergency(release, now):
            return ImageDecision(
                image, True, _emergency_warning(image, release, result), release, True
            )
    release, result = results[0]
    why = result.reasons[0] if result.reasons else "not approved"
    return ImageDecision(
        image,
        False,
        f"{image}: {release.service_slug} {release.version_ref} to {environment.name} is "
        f"{result.status} ({why}). Follow it at {_release_url(release)}",
    )


def _gate(release: Release, now: datetime) -> GateResult:
    try:
        release.approval  # noqa: B018 - loaded by select_related; absent on broken imports
    except ApprovalRequest.DoesNotExist:
        return GateResult(status="pending", reasons=["no approval request"])
    return evaluate_gate(release, now=now)


def _in_emergency(release: Release, now: datetime) -> bool:
    # Only emergency changes hold exceptions: the query runs for them alone.
    if release.change.type != ChangeRecord.Type.EMERGENCY:
        return False
    return emergency_standing(release.change, now)[0]


def _emergency_warning(image: str, release: Release, result: GateResult) -> str:
    return (
        f"{image} admitted under the emergency exception of {release.change.ref} "
        f"(gate: {result.status}); the CAB reviews it."
    )


def _unknown_reason(image: str, parsed, environment: Environment, other: dict | None) -> str:
    """No release of this environment names the digest: say what would get it approved."""
    api = f"{settings.SITE_URL}/api/v1/releases/"
    if other is not None:
        return (
            f"{image} is not approved for {environment.name}: request approval for "
            f"{other['service__slug']} to {environment.slug} with this digest ({api}); it was "
            f"requested for {other['environment__name']} in "
            f"{settings.SITE_URL}/approvals/releases/{other['pk']}/"
        )
    return (
        f"{image} is not approved for {environment.name}: no release names digest "
        f"{parsed.digest[7:19]}. Request approval for the service that builds it to "
        f"{environment.slug} with this image and digest ({api})."
    )


def _release_url(release: Release) -> str:
    return f"{settings.SITE_URL}/approvals/releases/{release.pk}/"
