"""Invariant 22, checked after every step: a pipeline's deployment gate (a GitHub deployment
protection rule, a GitLab deployment approval) opens only on the gate's approval of that digest.

A run waiting on Signoff names a repository, an environment and a commit; Signoff links it to a
release and answers it once, through the outbox, when the gate decides. After each step that
wrote something:

- every run linked in the step is linked to a release of its repository's service, to the
  environment it waits on, built from the commit it deploys;
- every answer queued in the step is queued once for its run (its `PipelineWait` claimed, one
  outbox row, one `pipeline.answer_queued` ledger entry, all saying the same answer);
- "approved" goes back only while the gate answers approved for that release, whose digest is
  the one the model's CI built from the run's commit, in the run's environment; "rejected" only
  while the gate answers rejected, expired or blocked (never pending or approved);
- a run stays bound to the release it was linked to, and never waits on a rejected release (a
  rejection or a withdrawal is passed on at once);
- every link and every answer is in the ledger, and nothing else queues a pipeline answer.

What the model's CI sent (which commit and environment each run waits on, which digest each
commit was built into) comes from `PipelineRecord`, kept by `pipeline_steps`: the product's own
matching cannot vouch for itself. A refused (forged) delivery is judged by the step that sent it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from approvals.pipelines.models import PipelineWait
from governance.models import Delivery, LedgerEntry
from tests.invariants.checks import Record, Requests, require
from tests.invariants.drawing import tally
from tests.invariants.oracle import World

HOOKS = ("github", "gitlab")
LINKED, ANSWERED = "pipeline.linked", "pipeline.answer_queued"
# A rejection goes back only when the gate has closed or holds the release back.
MAY_REJECT = ("rejected", "expired", "blocked")


@dataclass(frozen=True)
class Sent:
    """What a run waiting at a provider asked about, as the model's CI sent it."""

    repository: str
    environment: str  # as the CI spelt it
    sha: str


@dataclass
class PipelineRecord:
    """The model's CI: what it built and sent, and how far the checks have read."""

    service_of: dict[str, str] = field(default_factory=dict)  # repository → service slug
    digests: dict[str, str] = field(default_factory=dict)  # commit → the digest built from it
    sent: dict[tuple[str, str], Sent] = field(default_factory=dict)  # (provider, run id)
    bound: dict[int, int] = field(default_factory=dict)  # wait → the release it was linked to
    answered: set[int] = field(default_factory=set)  # waits answered
    seen_seq: int = 0  # ledger entries read up to


def check_pipelines(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 22 after a step that wrote something (nothing is linked or answered without a
    write)."""
    if not wrote:
        return
    seen: PipelineRecord = record.pipelines
    waits = {
        (w.provider, w.external_id): w
        for w in PipelineWait.objects.filter(provider__in=HOOKS).select_related(
            "release__environment", "release__service"
        )
    }
    entries = list(
        LedgerEntry.objects.filter(seq__gt=seen.seen_seq)
        .filter(kind__in=(LINKED, ANSWERED), payload__provider__in=HOOKS)
        .order_by("seq")
    )
    outbox = {
        str(d.delivery_id): d
        for d in Delivery.objects.filter(
            delivery_id__in=[e.payload["delivery"] for e in entries if e.kind == ANSWERED]
        )
    }
    for entry in entries:
        wait = waits.get((entry.payload["provider"], entry.payload["external_id"]))
        where = f"{entry.payload['provider']} run {entry.payload['external_id']}"
        require(wait is not None, 22, f"the ledger says {entry.kind} for {where}, which is gone")
        if entry.kind == LINKED:
            check_link(seen, wait, entry, where)
        else:
            delivery = outbox.get(entry.payload["delivery"])
            check_answer(seen, wait, entry, delivery, answers, where)
    if entries:
        seen.seen_seq = entries[-1].seq
    check_bound(seen, waits.values(), answers)
    check_counts()


def check_link(seen: PipelineRecord, wait: PipelineWait, entry: LedgerEntry, where: str) -> None:
    """A run is linked to a release of its repository's service, for its environment, built from
    its commit (or of a run that names it)."""
    release = wait.release
    require(
        entry.subject == f"release:{release.pk}",
        22,
        f"{where} is linked to release #{release.pk}; the ledger says {entry.subject}",
    )
    seen.bound[wait.pk] = release.pk
    sent = seen.sent.get((wait.provider, wait.external_id))
    if sent is None:
        return  # not sent by the model's CI
    wanted = seen.service_of.get(sent.repository)
    require(
        release.service.slug == wanted
        and release.environment.slug == sent.environment.lower()
        and release.pipeline_sha == sent.sha == wait.sha,
        22,
        f"{where} ({sent.repository} at {sent.sha[:12]} to {sent.environment}) is linked to "
        f"release #{release.pk} of {release.service.slug} to {release.environment.slug}, "
        f"built from {release.pipeline_sha[:12] or 'no commit'}",
    )
    tally[f"pipeline run linked ({wait.provider})"] += 1


def check_answer(
    seen: PipelineRecord,
    wait: PipelineWait,
    entry: LedgerEntry,
    delivery: Delivery | None,
    answers: dict[int, str],
    where: str,
) -> None:
    """One answer per run, queued and ledgered alike, and only what the gate says now."""
    answer = entry.payload["answer"]
    release = wait.release
    require(wait.pk not in seen.answered, 22, f"{where} was answered a second time ({answer})")
    seen.answered.add(wait.pk)
    said = (delivery.payload.get("state") or delivery.payload.get("status")) if delivery else None
    require(
        delivery is not None
        and delivery.channel == wait.provider
        and delivery.kind == f"pipeline.{answer}"
        and said == answer
        and wait.state == PipelineWait.State.ANSWERED
        and wait.answer == answer,
        22,
        f"{where}: the ledger queued '{answer}', the run is {wait.state} '{wait.answer}', the "
        f"outbox holds {delivery.kind if delivery else 'nothing'} saying {said}",
    )
    gate = answers.get(release.pk)
    if answer == "approved":
        check_approved(seen, wait, release, delivery, gate, where)
    else:
        require(
            answer == "rejected" and gate in MAY_REJECT,
            22,
            f"{where} was answered '{answer}' while the gate says {gate} for release #{release.pk}",
        )
    tally[f"pipeline run answered {answer}"] += 1


def check_approved(seen, wait, release, delivery, gate: str | None, where: str) -> None:
    require(
        gate == "approved",
        22,
        f"{where} was answered approved while the gate says {gate} for release #{release.pk}",
    )
    sent = seen.sent.get((wait.provider, wait.external_id))
    if sent is None:
        return
    built = seen.digests.get(sent.sha)
    require(
        built == release.digest,
        22,
        f"{where} deploys {sent.sha[:12]}, built into {built or 'nothing the CI asked about'}, "
        f"and was answered approved on release #{release.pk}'s approval of {release.digest}",
    )
    require(
        release.environment.slug == sent.environment.lower(),
        22,
        f"{where} waits on {sent.environment} and was answered approved on release "
        f"#{release.pk} to {release.environment.slug}",
    )
    comment = delivery.payload.get("comment", "")
    require(release.digest in comment, 22, f"{where}: the approval names no digest: {comment}")
    if wait.provider == "github":
        require(
            delivery.payload.get("environment_name") == sent.environment,
            22,
            f"{where} waits on {sent.environment}; the answer is for "
            f"{delivery.payload.get('environment_name')}",
        )


def check_bound(seen: PipelineRecord, waits, answers: dict[int, str]) -> None:
    """Runs stay with their release; none waits on one that was rejected or withdrawn."""
    for wait in waits:
        where = f"{wait.provider} run {wait.external_id}"
        bound = seen.bound.get(wait.pk)
        require(
            bound in (None, wait.release_id),
            22,
            f"{where} was linked to release #{bound} and now waits on #{wait.release_id}",
        )
        if wait.state == PipelineWait.State.WAITING:
            require(
                answers.get(wait.release_id) != "rejected",
                22,
                f"{where} still waits on release #{wait.release_id}, which the gate rejects",
            )
        else:
            require(
                wait.pk in seen.answered,
                22,
                f"{where} is {wait.state} '{wait.answer}' with no answer queued in the ledger",
            )


def check_counts() -> None:
    """Every run's link and answer is ledgered once, and every pipeline answer in the outbox is
    one of them (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT
              (SELECT count(*) FROM {PipelineWait._meta.db_table} WHERE provider = ANY(%s)),
              (SELECT count(*) FROM {PipelineWait._meta.db_table}
                 WHERE provider = ANY(%s) AND state = 'answered'),
              (SELECT count(*) FROM {LedgerEntry._meta.db_table}
                 WHERE kind = %s AND payload->>'provider' = ANY(%s)),
              (SELECT count(*) FROM {LedgerEntry._meta.db_table}
                 WHERE kind = %s AND payload->>'provider' = ANY(%s)),
              (SELECT count(*) FROM {Delivery._meta.db_table}
                 WHERE channel = ANY(%s) AND kind LIKE 'pipeline.%%')""",
            [list(HOOKS), list(HOOKS), LINKED, list(HOOKS), ANSWERED, list(HOOKS), list(HOOKS)],
        )
        waits, answered, linked, queued, rows = cursor.fetchone()
    require(
        waits == linked and answered == queued == rows,
        22,
        f"{waits} runs linked, {linked} pipeline.linked entries; {answered} answered, "
        f"{queued} pipeline.answer_queued entries, {rows} answers in the outbox",
    )
