"""Invariant 22 (a pipeline's deployment gate opens only on the gate's approval of that digest)
catches a broken rule: each test breaks one rule of the product, plays a short story of the
model's CI through the model's own steps and expects the model to report it; unbroken, the same
story keeps every invariant.

The random search reaches these states too (the tally of `test_model.py` shows how often), but
these stories make sure each part of invariant 22 is judged, and shown to bite, on every run.
"""

from __future__ import annotations

import pytest

from approvals.models import Release
from approvals.pipelines import answers, services, webhooks
from approvals.pipelines.models import PipelineWait
from approvals.services import transitions
from tests.invariants.organisation import BOT
from tests.invariants.stories import play, play_broken, then

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def build(machine, provider: str, service: str, environment: str, waits: bool = True) -> int:
    """The CI builds a new commit and asks for approval (its job waiting at once when `waits`);
    the release's index in the model."""
    then(machine, "pipeline_builds", provider, service, environment, None, waits)
    return len(machine.releases) - 1


def waits(machine) -> list[tuple[str, str]]:
    """Each run's state and answer, oldest first."""
    return list(PipelineWait.objects.order_by("pk").values_list("state", "answer"))


# --- The stories -----------------------------------------------------------------------------


def a_dev_build_and_a_stranger(machine) -> None:
    """web's dev release needs nobody: its waiting job is answered approved at once; replayed,
    the delivery changes nothing; a re-run is answered again from the same approval. A job of a
    commit nobody asked about links to nothing."""
    build(machine, "github", "web", "dev")
    assert waits(machine) == [("answered", "approved")]
    then(machine, "pipeline_redelivers", True, 0, "dave")  # the same delivery again
    then(machine, "pipeline_redelivers", False, 0, "dave")  # the job re-run
    assert waits(machine) == [("answered", "approved")] * 2
    then(machine, "pipeline_waits", 3, "dev", "dave", True)  # acme/web on GitLab
    assert len(waits(machine)) == 2


def a_staging_build_approved(machine) -> None:
    """payments-api to staging waits for one approver; alice approves, the job hears it."""
    index = build(machine, "gitlab", "payments-api", "staging")
    assert waits(machine) == [("waiting", "")]
    then(machine, "decide_through_the_api", "alice", index, "approve", "reviewed")
    assert waits(machine) == [("answered", "approved")]


def a_staging_build_withdrawn(machine) -> None:
    """web to staging waits; the pipeline withdraws its request: the job is told rejected."""
    index = build(machine, "github", "web", "staging")
    then(machine, "take_back", "request", BOT, index)
    assert waits(machine) == [("answered", "rejected")]


def a_job_waits_through_a_freeze(machine) -> None:
    """A dev release inside a hard freeze: its job waits until the freeze ends and beat runs;
    GitHub opens a release for the same commit on its way to staging, which waits for bob."""
    index = build(machine, "github", "web", "dev", waits=False)
    then(machine, "freeze", "ada", "hard", None, None, 0, 6, "UTC", False, None)
    then(machine, "pipeline_waits", 0, "dev", "dave", False)
    assert waits(machine) == [("waiting", "")]
    then(machine, "end_freeze", "ada", 0)
    then(machine, "pipelines_swept")
    assert waits(machine) == [("answered", "approved")]
    then(machine, "pipeline_waits", 0, "staging", "alice", False)
    opened = Release.objects.get(pk=machine.releases[-1])
    assert machine.releases[-1] != machine.releases[index]
    assert (opened.environment.slug, opened.triggered_by_name) == ("staging", "alice")
    assert waits(machine)[-1] == ("waiting", "")


def forged_deliveries(machine) -> None:
    """Deliveries signed with the wrong secret, with SHA-1 only, changed after signing, with the
    wrong GitLab token or none: each is refused and nothing is written."""
    build(machine, "github", "web", "dev", waits=False)
    build(machine, "gitlab", "payments-api", "dev", waits=False)
    for pick in (0, 0, 0, 1, 1):  # GitHub's commit three times, then GitLab's twice
        then(machine, "pipeline_forged", pick, "dev")
    assert waits(machine) == []


def _newest_of_service(event, service, environment) -> Release | None:
    """Matching that forgets the commit: the newest release of the service there."""
    return (
        Release.objects.filter(service=service, environment=environment)
        .order_by("-created_at", "-pk")
        .first()
    )


def _always_approved(release_id: int, now) -> tuple[str, str]:
    return "approved", f"Approved in Signoff, release #{release_id}."


def _never_sweeps(now=None) -> int:
    return 0


BROKEN = {
    # story, what is broken
    "the answer ignores the commit": (
        a_dev_build_and_a_stranger,
        (services, "find_release", _newest_of_service),
    ),
    "approved while the gate is pending": (
        a_staging_build_approved,
        (answers, "decide", _always_approved),
    ),
    "a withdrawal is not passed on": (
        a_staging_build_withdrawn,
        (transitions, "answer_release", lambda release_id, now=None: 0),
    ),
    "beat never answers": (
        a_job_waits_through_a_freeze,
        (answers, "answer_waiting", _never_sweeps),
    ),
    "signatures not checked": (
        forged_deliveries,
        (webhooks, "valid_github_signature", lambda header, body, secret: True),
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_the_model_catches_a_broken_rule(broken):
    story, rule = BROKEN[broken]
    play_broken(story, rule, [22])


@pytest.mark.parametrize("broken", BROKEN)
def test_the_same_story_keeps_every_invariant(broken):
    story, _ = BROKEN[broken]
    play(story)
