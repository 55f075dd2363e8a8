"""Invariant 19 (a cluster runs only what was approved for its environment) catches a broken
admission rule: each test breaks one rule of the webhook, plays a short story through the
model's own steps and expects the model to report invariant 19; unbroken, the same story keeps
every invariant.

The random search reaches most of these states too (the tally shows admitted, denied, dry run
and replayed reviews; emergencies are rarer), but these stories make sure each rule is judged,
and shown to bite, on every run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest

from approvals.admission import decisions, review, services
from approvals.gate import GateResult, evaluate_gate
from approvals.models import Release
from governance.ledger import services as ledger
from governance.models import Environment
from tests.invariants.cluster_checks import Sent
from tests.invariants.organisation import BOT
from tests.invariants.stories import gate_says, play, play_broken, request, then

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def admit(
    machine,
    index: int,
    image: str = "release",
    where: str = "its own",
    *,
    kind: str = "Pod",
    operation: str = "CREATE",
    dry_run: bool = False,
    again: str = "no",
) -> Sent:
    """A pod (or deployment) of release `index`, its image written as `image`, asks the cluster
    of the release's environment (or another's), in a governed namespace; returns what was
    sent and answered."""
    args = (index, "any", image, where, "governed", kind, operation, dry_run, None, again)
    then(machine, "cluster_admits", *args)
    return machine.review_bodies[-1][0]


def emergency(machine, service: str, environment: str) -> int:
    """The pipeline asks for an emergency release; its index in the model."""
    args = (BOT, service, environment, "", None, "emergency", "passed", False, None)
    then(machine, "request_release", *args)
    return len(machine.releases) - 1


# --- The stories -----------------------------------------------------------------------------


def approved_then_frozen(machine) -> None:
    """bob approves web to staging: its pod is admitted; a hard freeze over staging comes, and
    the next pod is denied."""
    index = request(machine, "web", "staging")
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert admit(machine, index).allowed
    then(machine, "freeze", "ada", "hard", "staging", None, 0, 6, "UTC", False, None)
    assert gate_says(machine, index) == "blocked"
    assert not admit(machine, index).allowed


def scaled_while_frozen(machine) -> None:
    """bob approves web to staging and its deployment is admitted; a hard freeze comes: scaling
    the deployment (an UPDATE bringing no new image) goes on, a new version of it does not."""
    index = request(machine, "web", "staging")
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert admit(machine, index, kind="Deployment").allowed
    then(machine, "freeze", "ada", "hard", "staging", None, 0, 6, "UTC", False, None)
    assert admit(machine, index, kind="Deployment", operation="UPDATE (scale)").allowed
    assert not admit(machine, index, kind="Deployment", operation="UPDATE").allowed


def approved_then_expired(machine) -> None:
    """Under one approver everywhere (approvals valid six hours) bob approves web to staging:
    admitted; a day later the approval has expired and the next pod is denied."""
    then(machine, "publish_policy", "ada", "one-approver")
    index = request(machine, "web", "staging")
    then(machine, "decide_through_the_api", "bob", index, "approve", "reviewed")
    assert admit(machine, index, kind="Deployment").allowed
    then(machine, "time_passes", 26)
    assert gate_says(machine, index) == "expired"
    assert not admit(machine, index, kind="Deployment").allowed


def a_dev_release_in_staging(machine) -> None:
    """A dev release (approved at once) runs in dev's cluster, not in staging's."""
    index = request(machine, "web", "dev")
    assert admit(machine, index).allowed
    assert not admit(machine, index, where="another").allowed


def a_pending_release(machine) -> None:
    """web to staging waits for its approver: its pod is denied, and denied again when the
    same review is sent again at once (one ledger entry)."""
    index = request(machine, "web", "staging")
    assert not admit(machine, index, again="at once").allowed


def a_pending_release_dry_run(machine) -> None:
    """A dry run of a pod of a release waiting for approval: denied, nothing written."""
    index = request(machine, "web", "staging")
    assert not admit(machine, index, dry_run=True).allowed


def another_digest_of_an_approved_release(machine) -> None:
    """A dev release is approved; its repository with a digest no release names is denied."""
    index = request(machine, "web", "dev")
    assert not admit(machine, index, image="another digest").allowed


def an_emergency_then_rejected(machine) -> None:
    """An emergency to staging, declared by dave: admitted before approval, with a warning;
    bob rejects it and the next pod is denied, inside the exception still."""
    index = emergency(machine, "web", "staging")
    then(machine, "declare", "dave", 0, 4)
    admitted = admit(machine, index)
    assert admitted.allowed and admitted.warnings
    then(machine, "decide_through_the_api", "bob", index, "reject", "reviewed")
    assert gate_says(machine, index) == "rejected"
    assert not admit(machine, index).allowed


# --- The rules, broken -----------------------------------------------------------------------

CANDIDATES = decisions._candidates


def _candidates_anywhere(digests, environment) -> dict[str, list[Release]]:
    """Releases naming the digests in every environment, not only the cluster's."""
    found = defaultdict(list)
    for other in Environment.objects.order_by("pk"):
        for digest, releases in CANDIDATES(digests, other).items():
            found[digest].extend(releases)
    return found


def _candidates_by_repository(digests, environment) -> dict[str, list[Release]]:
    """Every release of the environment, whatever digest the image is pinned by."""
    named = set(Release.objects.filter(environment=environment).values_list("digest", flat=True))
    releases = [r for rs in CANDIDATES(named, environment).values() for r in rs]
    return dict.fromkeys(digests, releases)


def _request_status(release, now) -> GateResult:
    """The approval request's stored status, instead of the gate asked now."""
    return GateResult(release.approval.status)


def _every_image_new(request: review.ReviewRequest) -> list[str]:
    """Every image of the object, as if an UPDATE's old object ran none of them."""
    return list(dict.fromkeys(c.image for c in request.containers))


def _rejections_forgotten(release, now) -> GateResult:
    """The gate's answer, with a rejection read as still pending."""
    result = evaluate_gate(release, now=now)
    return GateResult("pending", result.reasons) if result.status == "rejected" else result


def _every_denial_ledgered(cluster, review, decisions) -> None:
    """A denial ledgered each time, replays included."""
    ledger.append(
        kind="admission.denied",
        subject=f"cluster:{cluster.slug}",
        actor="kube-apiserver",
        payload={"uid": review.uid, "images": [d.image for d in decisions]},
    )


BROKEN = {
    # story, what is broken
    "the gate's answer ignored": (
        a_pending_release,
        (decisions, "_gate", lambda release, now: GateResult("approved")),
    ),
    "a freeze ignored": (approved_then_frozen, (decisions, "_gate", _request_status)),
    "an expired approval admitted": (approved_then_expired, (decisions, "_gate", _request_status)),
    "the environment ignored": (
        a_dev_release_in_staging,
        (decisions, "_candidates", _candidates_anywhere),
    ),
    "any digest of the repository": (
        another_digest_of_an_approved_release,
        (decisions, "_candidates", _candidates_by_repository),
    ),
    "an emergency admitted after its rejection": (
        an_emergency_then_rejected,
        (decisions, "_gate", _rejections_forgotten),
    ),
    "replays ledgered again": (
        a_pending_release,
        (services, "_ledger_denial", _every_denial_ledgered),
    ),
    "a scale checked as a new image": (
        scaled_while_frozen,
        (review.ReviewRequest, "new_images", property(_every_image_new)),
    ),
    "emergency exceptions ignored": (
        an_emergency_then_rejected,
        (decisions, "_in_emergency", lambda release, now: False),
    ),
    "dry runs recorded": (a_pending_release_dry_run, (review, "_flag", lambda data, key: False)),
}
STORIES: dict[str, Callable] = {
    story.__name__: story
    for story in (
        approved_then_frozen,
        scaled_while_frozen,
        approved_then_expired,
        a_dev_release_in_staging,
        a_pending_release,
        a_pending_release_dry_run,
        another_digest_of_an_approved_release,
        an_emergency_then_rejected,
    )
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_model_catches_a_broken_admission_rule(broken):
    story, rule = BROKEN[broken]
    play_broken(story, rule, [19])


@pytest.mark.parametrize("story", STORIES)
def test_the_same_story_keeps_every_invariant(story):
    play(STORIES[story])
