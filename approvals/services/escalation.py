"""Chasing open stages (Celery beat): remind the undecided approvers, then escalate to the CAB.

Both sweeps are set-based and idempotent. Each claims a batch of due stages under row locks
that concurrent sweeps skip (SKIP LOCKED), marks them (`reminded_at`, `escalated_at`) in one
UPDATE, and does the batch's work in a fixed number of queries: a second run finds nothing,
and two workers running at once never do a stage twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from approvals.announcements import release_event
from approvals.gate import refresh_stage_snapshots
from approvals.models import ApprovalRequest, ApprovalStage, Decision
from changes.cab.agenda import AgendaEntry, put_on_next_meetings
from changes.cab.models import AgendaItem
from governance.authority.selectors import eligible_approvers
from governance.ledger import services as ledger
from governance.models import Delegation, Notification, Team, User
from governance.notifications.events import EventSpec, publish_events
from governance.notifications.services import queue_notifications, route

# Small enough that one transaction's ledger entries stay cheap: each entry moves the ledger's
# head row, and PostgreSQL's cost per update of one row grows with the updates before it in the
# same transaction (measured: 2,000 head moves in one transaction took 20 s, 200 a fraction).
SWEEP_BATCH = 200


def remind_due_stages(*, now: datetime | None = None) -> int:
    """Remind the approvers who have not decided a stage whose reminder time has come (and
    whose escalation has not: then the escalation speaks). Returns how many stages."""
    now = now or timezone.now()
    due = Q(remind_at__lte=now, reminded_at__isnull=True) & (
        Q(escalate_at__isnull=True) | Q(escalate_at__gt=now)
    )
    return _sweep(due, "reminded_at", _remind, now)


def escalate_overdue_stages(*, now: datetime | None = None) -> int:
    """Escalate stages whose escalation time has passed undecided: CAB members become eligible
    (dual control and every other rule still hold), they are told, and the stage goes on the
    next CAB meeting's agenda. Returns how many stages."""
    now = now or timezone.now()
    return _sweep(
        Q(escalate_at__lte=now, escalated_at__isnull=True), "escalated_at", _escalate, now
    )


def _sweep(due: Q, mark: str, work, now: datetime) -> int:
    # What the batches of one run share (who sits on the CAB of a service and environment):
    # read once per run, not once per batch.
    shared: dict = {}
    total = 0
    while True:
        with transaction.atomic(), ledger.deferred():
            ids = list(
                ApprovalStage.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(due, status=ApprovalStage.Status.ACTIVE)
                .filter(request__status=ApprovalRequest.Status.PENDING)
                .order_by("pk")
                .values_list("pk", flat=True)[:SWEEP_BATCH]
            )
            if ids:
                ApprovalStage.objects.filter(pk__in=ids).update(**{mark: now})
                work(_stages(ids), now, shared)
        total += len(ids)
        if len(ids) < SWEEP_BATCH:
            return total


def _stages(ids: list[int]) -> list[ApprovalStage]:
    return list(
        ApprovalStage.objects.filter(pk__in=ids)
        .select_related(
            "request__release__service",
            "request__release__environment",
            "request__release__change",
        )
        .order_by("pk")
    )


def _remind(stages: list[ApprovalStage], now: datetime, shared: dict) -> None:
    waiting = _undecided_approvers(stages)
    people = _represented(waiting, stages, now)
    digest = _Digest()
    for stage in stages:
        recipients, reason = route(people[stage.pk], now)
        release = stage.request.release
        due = f", due {stage.due_at:%Y-%m-%d %H:%M} UTC" if stage.due_at else ""
        digest.add(
            recipients,
            f"{release} waits for {stage.name} ({stage.approval_count} of "
            f"{stage.required_count} approvals{due})",
            reverse("approvals:release_detail", args=[release.pk]),
            reason,
        )
        ledger.append(
            kind="stage.reminded",
            subject=f"release:{release.pk}",
            actor="system",
            payload={"stage": stage.key, "people": sorted(p.username for p in recipients)},
        )
    digest.send("Reminder", "waiting for your decision", reverse("approvals:queue"))


def _escalate(stages: list[ApprovalStage], now: datetime, shared: dict) -> None:
    added = _make_cab_eligible(stages, shared)
    placed = put_on_next_meetings([_agenda_entry(stage) for stage in stages], now)
    digest = _Digest()
    events: list[EventSpec] = []
    for stage in stages:
        release = stage.request.release
        meeting = placed.get(f"stage:{stage.pk}")
        recipients, reason = route(added[stage.pk], now)
        where = f"on the agenda of {meeting}" if meeting else "no CAB meeting is scheduled"
        due = f"due {stage.due_at:%Y-%m-%d %H:%M} UTC" if stage.due_at else "overdue"
        digest.add(
            recipients,
            f"{stage.name} of {release} ({due}); {where}",
            reverse("approvals:release_detail", args=[release.pk]),
            f"you sit on the CAB; {reason}" if reason else "you sit on the CAB",
        )
        ledger.append(
            kind="stage.escalated",
            subject=f"release:{release.pk}",
            actor="system",
            payload={
                "stage": stage.key,
                "due_at": stage.due_at.isoformat() if stage.due_at else None,
                "cab_members": sorted(p.username for p in added[stage.pk]),
                "cab_meeting": meeting.pk if meeting else None,
            },
        )
        events.append(
            release_event(
                release,
                "escalated",
                f"Escalated: {stage.name} of {release} is {due} and the CAB may now decide it.",
                stage=stage.name,
            )
        )
    publish_events(events)  # one batch for the whole sweep
    digest.send(
        "Escalated to the CAB",
        "overdue; CAB members may now decide it",
        reverse("approvals:queue"),
    )
    _tell_escalation_teams(stages, now)
    refresh_stage_snapshots([stage.pk for stage in stages])


def _tell_escalation_teams(stages: list[ApprovalStage], now: datetime) -> None:
    """An SLA's escalation target: the team it names hears of the overdue stage too (it gains
    no authority: deciding stays with the stage's approvers and the CAB)."""
    targets = {stage.pk: _escalation_team(stage) for stage in stages}
    slugs = {slug for slug in targets.values() if slug}
    if not slugs:
        return
    members: dict[str, list[User]] = defaultdict(list)
    for team in Team.objects.filter(slug__in=slugs).prefetch_related(
        Prefetch("members", queryset=User.objects.filter(is_active=True, is_service_account=False))
    ):
        members[team.slug] = list(team.members.all())
    digest = _Digest()
    for stage in stages:
        slug = targets[stage.pk]
        if not slug or not members[slug]:
            continue
        release = stage.request.release
        recipients, reason = route(members[slug], now)
        digest.add(
            recipients,
            f"{stage.name} of {release} is overdue and escalated",
            reverse("approvals:release_detail", args=[release.pk]),
            f"your team {slug} is the escalation target of its SLA"
            + (f"; {reason}" if reason else ""),
        )
    digest.send(
        "Escalated under an SLA",
        "overdue and escalated; your team is its SLA's escalation target",
        reverse("approvals:queue"),
    )


def _escalation_team(stage: ApprovalStage) -> str:
    planned = stage.request.plan.get("stages", [])
    return next((s.get("escalate_to", "") for s in planned if s.get("key") == stage.key), "")


class _Digest:
    """One notification per person for a whole sweep batch, however many stages concern them:
    a CAB member told of forty escalations gets one message listing them, not forty."""

    def __init__(self) -> None:
        self.lines: dict[int, list[tuple[str, str]]] = defaultdict(list)
        self.people: dict[int, User] = {}
        self.reasons: dict[int, str] = {}

    def add(self, people: Iterable[User], line: str, url: str, reason: str) -> None:
        for person in people:
            self.people[person.pk] = person
            self.lines[person.pk].append((line, url))
            self.reasons.setdefault(person.pk, reason)

    def send(self, title: str, words: str, list_url: str) -> None:
        rows = []
        for pk, lines in self.lines.items():
            if len(lines) == 1:
                (line, url), subject = lines[0], f"{title}: {lines[0][0]}"
                body = f"{line}: {words}."
            else:
                url, subject = list_url, f"{title}: {len(lines)} approvals"
                body = f"{len(lines)} approvals {words}:\n" + "\n".join(
                    f"- {line} {settings.SITE_URL}{link}" for line, link in lines
                )
            rows.append(
                Notification(
                    recipient=self.people[pk],
                    subject=subject[:200],
                    body=body,
                    url=url,
                    reason=self.reasons[pk],
                )
            )
        queue_notifications(rows)


def _agenda_entry(stage: ApprovalStage) -> AgendaEntry:
    release = stage.request.release
    return AgendaEntry(
        key=f"stage:{stage.pk}",
        kind=AgendaItem.Kind.ESCALATED_APPROVAL,
        title=f"Overdue: {stage.name} of {release.service.name} {release.version} "
        f"to {release.environment.name}",
        service=release.service,
        detail=f"Change {release.change.ref}: {release.change.title}",
        change_id=release.change_id,
        release_id=release.pk,
    )


def _make_cab_eligible(stages: list[ApprovalStage], members: dict) -> dict[int, list[User]]:
    """Add the CAB members of each stage's service and environment to its approvers (never
    the release's own people); returns, per stage, the CAB members now eligible."""
    added: dict[int, list[User]] = {}
    through = []
    for stage in stages:
        release = stage.request.release
        scope = (release.service_id, release.environment_id)
        if scope not in members:
            members[scope] = list(eligible_approvers(release.service, "cab", release.environment))
        conflicted = {release.requested_by_id, release.triggered_by_id, release.change.author_id}
        added[stage.pk] = [p for p in members[scope] if p.pk not in conflicted]
        through += [
            ApprovalStage.eligible_approvers.through(approvalstage_id=stage.pk, user_id=p.pk)
            for p in added[stage.pk]
        ]
    ApprovalStage.eligible_approvers.through.objects.bulk_create(
        through, ignore_conflicts=True, batch_size=1000
    )
    return added


def _undecided_approvers(stages: list[ApprovalStage]) -> dict[int, list[User]]:
    """Per stage, its eligible approvers who have not decided it (nor been acted for)."""
    ids = [s.pk for s in stages]
    decided = defaultdict(set)
    for stage_id, approver, principal in Decision.objects.filter(stage__in=ids).values_list(
        "stage_id", "approver_id", "on_behalf_of_id"
    ):
        decided[stage_id] |= {approver, principal}
    links = ApprovalStage.eligible_approvers.through.objects.filter(approvalstage__in=ids)
    people = {u.pk: u for u in _people(links.values("user_id"))}
    waiting = defaultdict(list)
    for stage_id, user_id in links.values_list("approvalstage_id", "user_id"):
        if user_id not in decided[stage_id] and user_id in people:
            waiting[stage_id].append(people[user_id])
    return waiting


def _represented(
    waiting: dict[int, list[User]], stages: list[ApprovalStage], now: datetime
) -> dict[int, list[User]]:
    """Someone away with a delegation in force is represented by their delegate."""
    away = {p.pk for people in waiting.values() for p in people}
    delegations = list(
        Delegation.objects.in_force(now).filter(delegator__in=away).select_related("delegate")
    )
    result = {}
    for stage in stages:
        people = {p.pk: p for p in waiting.get(stage.pk, [])}
        for delegation in delegations:
            covers = delegation.service_id in (None, stage.request.release.service_id)
            if covers and people.pop(delegation.delegator_id, None):
                people[delegation.delegate_id] = delegation.delegate
        result[stage.pk] = list(people.values())
    return result


def _people(ids: QuerySet) -> QuerySet[User]:
    return User.objects.filter(pk__in=ids, is_active=True)
