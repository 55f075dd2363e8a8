"""Invariant 20, checked after every step: about the CAB's meetings, their agendas and decisions,
and the reviews that follow an emergency.

- A meeting outcome that approves or rejects a release is one Decision by the member who
  recorded it, on the item's stage, at that moment, through the channel "cab", and the ledger's
  `decision.recorded` entry names that member; every decision made through a meeting is such an
  outcome. Whether the member could decide it (their own authority, or the CAB's on a stage
  escalated before then; never the requester, trigger or change author, never an auditor) is
  judged with every other decision by `checks.check_decision`.
- An item's outcome is recorded once, by a member present in a meeting in progress with its
  quorum, is one its kind takes, has its `cab.outcome_recorded` entry, and never changes after;
  "justified" or "not justified" is the emergency's secondary review by that member.
- The CAB's secondary review of an emergency is recorded once, by a CAB member of its service,
  never its declarer or its change's author, never an auditor; a review (post-implementation or
  post-mortem) is completed by an owner of the service, never the change's author or the
  emergency's declarer, and a post-mortem says whether the emergency was justified. Each act has
  its ledger entry.

What the checks have judged is kept on the model's `Record` (as `record.cab`), so each step
reads only the rows these tables hold, which stay few in an example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from approvals.emergencies.models import EmergencyException
from approvals.models import Decision
from changes.cab.models import AgendaItem, CabMeeting
from changes.reviews.models import Review
from governance.models import LedgerEntry, Role
from tests.invariants.checks import Record, Requests, require
from tests.invariants.drawing import tally
from tests.invariants.oracle import World

APPROVAL_KINDS = ("escalated_approval", "cab_approval")
CARRIED = ("deferred", "needs_information")
ACTING = ("justified", "not_justified")  # outcomes that record an emergency's secondary review
VERDICTS = {"approved": "approve", "rejected": "reject"}


def outcomes_of(kind: str) -> tuple[str, ...]:
    """The outcomes an agenda item of this kind takes (README, "The CAB")."""
    if kind in APPROVAL_KINDS:
        return ("approved", "rejected", *CARRIED)
    if kind == "emergency_review":
        return (*ACTING, *CARRIED)
    return ("reviewed", *CARRIED)


@dataclass
class CabSeen:
    """What invariant 20 has judged so far in an example."""

    decision: int = 0  # decisions through a meeting, judged up to this pk
    outcomes: dict[int, tuple] = field(default_factory=dict)  # item → what was recorded
    reviewed: dict[int, tuple] = field(default_factory=dict)  # emergency → its review
    completed: dict[int, tuple] = field(default_factory=dict)  # review → its completion


def seen_by(record: Record) -> CabSeen:
    seen = getattr(record, "cab", None)
    if seen is None:
        seen = record.cab = CabSeen()
    return seen


def check_cab(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 20 after every step that wrote something (time alone changes none of it)."""
    if not wrote:
        return
    seen = seen_by(record)
    check_meeting_decisions(world, requests, seen)
    check_outcomes(world, requests, seen)
    check_secondary_reviews(world, seen)
    check_completed_reviews(world, seen)


# --- Decisions made in a meeting ---------------------------------------------------------------


def check_meeting_decisions(world: World, requests: Requests, seen: CabSeen) -> None:
    """Each decision through a meeting is one recorded outcome of its decider's, and the ledger
    names the decider."""
    stages = {s.pk: s for ss in requests.stages.values() for s in ss}
    fresh = [
        d
        for ds in requests.decisions.values()
        for d in ds
        if d.pk > seen.decision and d.channel == "cab"
    ]
    for decision in sorted(fresh, key=lambda d: d.pk):
        stage = stages[decision.stage_id]
        release_id = stage.request.release_id
        who = world.users[decision.approver_id].username
        what = f"{who}'s {decision.verdict} of release #{release_id} in a CAB meeting"
        outcome = next(o for o, v in VERDICTS.items() if v == decision.verdict)
        items = AgendaItem.objects.filter(
            key=f"stage:{stage.pk}",
            release_id=release_id,
            outcome=outcome,
            recorded_by=decision.approver_id,
            recorded_at=decision.created_at,
        )
        require(
            items.count() == 1,
            20,
            f"{what} matches {items.count()} outcomes {who} recorded on that stage's item",
        )
        require(
            LedgerEntry.objects.filter(
                kind="decision.recorded",
                subject=f"release:{release_id}",
                actor=who,
                payload__channel="cab",
                payload__verdict=decision.verdict,
            ).exists(),
            20,
            f"{what}: no decision.recorded ledger entry names {who}",
        )
        seen.decision = decision.pk


# --- Agenda items' outcomes --------------------------------------------------------------------


def check_outcomes(world: World, requests: Requests, seen: CabSeen) -> None:
    """Each outcome is recorded once, as the meeting's rules say, and never changes after."""
    recorded = list(AgendaItem.objects.exclude(outcome="").select_related("meeting"))
    entries = LedgerEntry.objects.filter(kind="cab.outcome_recorded").count()
    require(
        entries == len(recorded),
        20,
        f"{len(recorded)} agenda items have an outcome, {entries} cab.outcome_recorded entries",
    )
    for item in recorded:
        now = (item.outcome, item.recorded_by_id, item.recorded_at, item.minutes)
        known = seen.outcomes.get(item.pk)
        if known is not None:
            require(
                known == now,
                20,
                f"item {item.key} of {item.meeting.title}: its outcome {known[:2]} became "
                f"{now[:2]}",
            )
            continue
        check_outcome(world, requests, item)
        seen.outcomes[item.pk] = now


def check_outcome(world: World, requests: Requests, item: AgendaItem) -> None:
    meeting: CabMeeting = item.meeting
    at: datetime = item.recorded_at
    who = world.users[item.recorded_by_id].username
    where = f"{item.outcome} on item {item.key} of {meeting.title} by {who}"
    require(
        meeting.opened_at is not None
        and meeting.opened_at <= at
        and (meeting.closed_at is None or at <= meeting.closed_at),
        20,
        f"{where} was recorded at {at:%H:%M} outside the meeting (opened {meeting.opened_at}, "
        f"closed {meeting.closed_at})",
    )
    present = set(meeting.attendees.values_list("pk", flat=True))
    require(item.recorded_by_id in present, 20, f"{where}: {who} was not present")
    require(
        len(present) >= meeting.quorum,
        20,
        f"{where}: {len(present)} present of a quorum of {meeting.quorum}",
    )
    require(item.outcome in outcomes_of(item.kind), 20, f"{where}: not an outcome of {item.kind}")
    entry = (
        LedgerEntry.objects.filter(
            kind="cab.outcome_recorded", subject=f"cab_meeting:{meeting.pk}", payload__item=item.key
        )
        .values_list("actor", "payload__outcome")
        .first()
    )
    require(entry == (who, item.outcome), 20, f"{where}: the ledger says {entry}")
    if item.kind in APPROVAL_KINDS and item.outcome in VERDICTS:
        check_outcome_decided(world, requests, item, where)
    if item.outcome in ACTING:
        emergency = EmergencyException.objects.get(pk=int(item.key.partition(":")[2]))
        require(
            (emergency.reviewed_by_id, emergency.secondary_review)
            == (item.recorded_by_id, item.outcome),
            20,
            f"{where}: the emergency's review says {emergency.secondary_review or 'nothing'} "
            f"by {world.users.get(emergency.reviewed_by_id)}",
        )


def check_outcome_decided(world: World, requests: Requests, item: AgendaItem, where: str) -> None:
    """An approved or rejected approval item is the recorder's own decision on its stage."""
    stage_id = int(item.key.partition(":")[2])
    decided = [
        d
        for d in requests.decisions.get(stage_id, [])
        if d.approver_id == item.recorded_by_id
        and d.channel == "cab"
        and d.verdict == VERDICTS[item.outcome]
        and d.created_at == item.recorded_at
    ]
    require(len(decided) == 1, 20, f"{where} made {len(decided)} decisions of theirs")
    release = requests.releases[item.release_id]
    require(
        decided[0].request_id == release.approval.pk,
        20,
        f"{where} decided another release than the item's #{item.release_id}",
    )
    decision: Decision = decided[0]
    on_cab = world.holds(decision.approver_id, "cab", release, decision.created_at)
    tally[
        "judged: a meeting decision by a CAB member"
        if on_cab
        else "judged: a meeting decision on own authority"
    ] += 1


# --- Emergencies' secondary reviews and completed reviews ----------------------------------------


def sits_on_cab(world: World, person: int, service_id: int, at: datetime) -> bool:
    """Whether `person` holds the CAB role on the service at `at` (on any environment)."""
    service = world.services[service_id]
    return world.may_decide_at_all(person, at) and any(
        g.service_id == service_id
        or (g.service_id is None and g.team_id in (None, service.team_id))
        for g in world.grants_of(person, Role.CAB_MEMBER, at)
    )


def check_secondary_reviews(world: World, seen: CabSeen) -> None:
    """Each emergency's secondary review: once, by a CAB member of its service who neither
    declared it nor wrote its change, with its ledger entry."""
    reviewed = EmergencyException.objects.exclude(secondary_review="").select_related("change")
    for emergency in reviewed:
        now = (emergency.secondary_review, emergency.reviewed_by_id, emergency.reviewed_at)
        known = seen.reviewed.get(emergency.pk)
        where = f"the secondary review of emergency #{emergency.pk} ({emergency.change.ref})"
        if known is not None:
            require(known == now, 20, f"{where} was {known[:2]}, is now {now[:2]}")
            continue
        person = emergency.reviewed_by_id
        who = world.users[person].username if person else "nobody"
        require(
            person not in (emergency.declared_by_id, emergency.change.author_id),
            20,
            f"{where} was recorded by {who}, who declared it or wrote its change",
        )
        require(
            sits_on_cab(world, person, emergency.service_id, emergency.reviewed_at),
            20,
            f"{where} was recorded by {who}, who sits on no CAB of "
            f"{world.services[emergency.service_id].slug} (or is an auditor, or inactive)",
        )
        require(
            LedgerEntry.objects.filter(
                kind="emergency.reviewed",
                subject=f"change:{emergency.change_id}",
                actor=who,
                payload__emergency=emergency.pk,
            ).exists(),
            20,
            f"{where} has no emergency.reviewed ledger entry naming {who}",
        )
        tally["judged: a secondary review"] += 1
        seen.reviewed[emergency.pk] = now


def check_completed_reviews(world: World, seen: CabSeen) -> None:
    """Each completed review: by an active owner of its service, never the change's author or
    the emergency's declarer, with its ledger entry; a post-mortem judges the emergency."""
    completed = Review.objects.filter(status=Review.Status.COMPLETED).select_related("change")
    for review in completed:
        now = (review.completed_by_id, review.completed_at, review.justification_valid)
        known = seen.completed.get(review.pk)
        where = f"the {review.kind} #{review.pk} of {review.change.ref}"
        if known is not None:
            require(known == now, 20, f"{where} was completed as {known}, is now {now}")
            continue
        person = review.completed_by_id
        who = world.users[person].username if person else "nobody"
        declarer = (
            EmergencyException.objects.filter(change=review.change_id)
            .values_list("declared_by_id", flat=True)
            .first()
        )
        require(
            person not in (review.change.author_id, declarer),
            20,
            f"{where} was completed by {who}, who wrote the change or declared its emergency",
        )
        require(
            person in world.owners[review.service_id] and world.users[person].is_active,
            20,
            f"{where} was completed by {who}, no active owner of "
            f"{world.services[review.service_id].slug}",
        )
        require(
            (review.justification_valid is not None) == (review.kind == Review.Kind.POST_MORTEM),
            20,
            f"{where} says justified={review.justification_valid}",
        )
        require(
            LedgerEntry.objects.filter(
                kind="review.completed", subject=f"review:{review.pk}", actor=who
            ).exists(),
            20,
            f"{where} has no review.completed ledger entry naming {who}",
        )
        tally[f"judged: a completed {review.kind}"] += 1
        seen.completed[review.pk] = now
