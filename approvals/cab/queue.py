"""The CAB queue: what the board has to look at, for the services a member sits on it for.

Six kinds of work, each read by its own QuerySet and joined with UNION ALL into one list of
(kind, id, sort time, overdue) rows, so the page is paginated and counted in the database. Only
the rows of the page shown are then loaded, one query per kind, whatever the page's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import models
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Q,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.urls import NoReverseMatch, reverse

from approvals.emergencies.models import EmergencyException
from approvals.models import ApprovalRequest, ApprovalStage
from changes.cab.models import AgendaItem, CabMeeting
from changes.records.models import ChangeRecord
from changes.reviews.models import Review
from governance.models import Service

Kind = AgendaItem.Kind
KINDS = (
    Kind.ESCALATED_APPROVAL,
    Kind.CAB_APPROVAL,
    Kind.HIGH_RISK_CHANGE,
    Kind.EMERGENCY_REVIEW,
    Kind.POST_IMPLEMENTATION_REVIEW,
    Kind.POST_MORTEM,
)
# A high-risk change is the CAB's until it is scheduled (authorised) or has ended.
UNSCHEDULED_STATES = (
    ChangeRecord.State.NEW,
    ChangeRecord.State.ASSESS,
    ChangeRecord.State.AUTHORISE,
)
REVIEW_KINDS = {
    Kind.POST_IMPLEMENTATION_REVIEW: Review.Kind.POST_IMPLEMENTATION,
    Kind.POST_MORTEM: Review.Kind.POST_MORTEM,
}


def _stages(services: models.QuerySet | None) -> models.QuerySet:
    stages = ApprovalStage.objects.filter(
        status=ApprovalStage.Status.ACTIVE, request__status=ApprovalRequest.Status.PENDING
    )
    if services is not None:
        stages = stages.filter(request__release__service__in=services)
    return stages


def kind_querysets(services: models.QuerySet | None) -> dict[str, models.QuerySet]:
    """Each kind's rows, within `services` (None: every service)."""
    stages = _stages(services)
    changes = ChangeRecord.objects.filter(
        risk=ChangeRecord.Level.HIGH, state__in=UNSCHEDULED_STATES
    )
    emergencies = EmergencyException.objects.filter(
        secondary_review=EmergencyException.Review.PENDING
    )
    reviews = Review.objects.open()
    if services is not None:
        links = ChangeRecord.services.through.objects.filter(changerecord_id=OuterRef("pk"))
        # EXISTS: a change on two of the member's services is still one row.
        changes = changes.filter(Exists(links.filter(service__in=services)))
        emergencies = emergencies.filter(service__in=services)
        reviews = reviews.filter(service__in=services)
    return {
        # Once escalated, a stage is an escalated approval, whoever its approvers were.
        Kind.ESCALATED_APPROVAL: stages.filter(escalated_at__isnull=False),
        Kind.CAB_APPROVAL: stages.filter(approvers="cab", escalated_at__isnull=True),
        Kind.HIGH_RISK_CHANGE: changes,
        Kind.EMERGENCY_REVIEW: emergencies,
        Kind.POST_IMPLEMENTATION_REVIEW: reviews.filter(kind=Review.Kind.POST_IMPLEMENTATION),
        Kind.POST_MORTEM: reviews.filter(kind=Review.Kind.POST_MORTEM),
    }


def _sort_time(kind: str) -> models.Expression:
    """When a row became the CAB's business, or is due: the queue's order within its group."""
    if kind in (Kind.ESCALATED_APPROVAL, Kind.CAB_APPROVAL):
        return Coalesce("due_at", "activated_at", "request__requested_at")
    if kind == Kind.HIGH_RISK_CHANGE:
        return Coalesce("planned_start", "created_at")
    if kind == Kind.EMERGENCY_REVIEW:
        return F("starts_at")
    return F("due_at")


def _overdue(kind: str, now: datetime) -> Q | None:
    if kind == Kind.ESCALATED_APPROVAL:
        # A stage is escalated because it went overdue, whatever its due time says now.
        return Q(escalated_at__isnull=False)
    if kind == Kind.CAB_APPROVAL:
        return Q(due_at__lt=now)
    if kind in REVIEW_KINDS:
        return Q(due_at__lte=now)
    return None  # changes and emergencies have no due time of the CAB's


def _rows(kind: str, rows: models.QuerySet, now: datetime) -> models.QuerySet:
    overdue = _overdue(kind, now)
    flag = Case(When(overdue, then=Value(True)), default=Value(False)) if overdue else Value(False)
    return (
        rows.order_by()
        .annotate(
            row_kind=Value(str(kind), output_field=CharField()),
            row_id=F("pk"),
            row_at=Coalesce(_sort_time(kind), Value(now), output_field=DateTimeField()),
            row_overdue=models.ExpressionWrapper(flag, output_field=BooleanField()),
        )
        .values_list("row_kind", "row_id", "row_at", "row_overdue")
    )


@dataclass(frozen=True)
class QueueFilter:
    kind: str = ""
    service: Service | None = None
    overdue: bool = False


def filtered(
    services: models.QuerySet | None, chosen: QueueFilter, now: datetime
) -> dict[str, models.QuerySet]:
    """Each kind's rows narrowed by the service and overdue filters (not by kind: the counts
    per kind are shown beside the kind filter)."""
    sets = kind_querysets(services)
    if chosen.service is not None:
        sets = kind_querysets(Service.objects.filter(pk=chosen.service.pk))
        if services is not None and not services.filter(pk=chosen.service.pk).exists():
            sets = {kind: rows.none() for kind, rows in sets.items()}
    if chosen.overdue:
        sets = {
            kind: rows.filter(_overdue(kind, now)) if _overdue(kind, now) else rows.none()
            for kind, rows in sets.items()
        }
    return sets


def counts(sets: dict[str, models.QuerySet]) -> dict[str, int]:
    """How many rows of each kind (one query per kind)."""
    return {kind: rows.count() for kind, rows in sets.items()}


def union(sets: dict[str, models.QuerySet], kind: str, now: datetime) -> models.QuerySet:
    """The rows of `kind` (or of every kind), overdue first, then by their time."""
    kinds = [kind] if kind else list(KINDS)
    parts = [_rows(k, sets[k], now) for k in kinds]
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return rows.order_by("-row_overdue", "row_at", "row_kind", "row_id")


# --- Loading one page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """One row as the page shows it."""

    kind: str
    kind_label: str
    key: str  # the agenda item key of its subject
    title: str
    detail: str
    url: str
    services: str
    at: datetime
    overdue: bool
    meeting: CabMeeting | None = None

    @property
    def overdue_label(self) -> str:
        return "escalated" if self.kind == Kind.ESCALATED_APPROVAL else "overdue"


def _url(name: str, pk: int) -> str:
    try:
        return reverse(name, kwargs={"pk": pk})
    except NoReverseMatch:
        return ""


def subject_key(kind: str, pk: int) -> str:
    """The agenda key of a queue row's subject (the same keys the escalation sweep uses)."""
    if kind in (Kind.ESCALATED_APPROVAL, Kind.CAB_APPROVAL):
        return f"stage:{pk}"
    if kind == Kind.HIGH_RISK_CHANGE:
        return f"change:{pk}"
    if kind == Kind.EMERGENCY_REVIEW:
        return f"emergency:{pk}"
    return f"review:{pk}"


def load_subjects(pairs: list[tuple[str, int]]) -> dict[str, object]:
    """The objects behind (kind, id) pairs, keyed by agenda key: one query per kind present."""
    ids: dict[str, list[int]] = {}
    for kind, pk in pairs:
        group = "stage" if kind in (Kind.ESCALATED_APPROVAL, Kind.CAB_APPROVAL) else kind
        ids.setdefault(group, []).append(pk)
    found: dict[str, object] = {}
    if ids.get("stage"):
        for stage in ApprovalStage.objects.filter(pk__in=ids["stage"]).select_related(
            "request__release__service",
            "request__release__environment",
            "request__release__change",
        ):
            found[f"stage:{stage.pk}"] = stage
    if ids.get(Kind.HIGH_RISK_CHANGE):
        for change in ChangeRecord.objects.filter(
            pk__in=ids[Kind.HIGH_RISK_CHANGE]
        ).prefetch_related(models.Prefetch("services", Service.objects.only("id", "name"))):
            found[f"change:{change.pk}"] = change
    if ids.get(Kind.EMERGENCY_REVIEW):
        for emergency in EmergencyException.objects.filter(
            pk__in=ids[Kind.EMERGENCY_REVIEW]
        ).select_related("change", "service", "declared_by"):
            found[f"emergency:{emergency.pk}"] = emergency
    review_ids = [pk for kind in REVIEW_KINDS for pk in ids.get(kind, [])]
    if review_ids:
        for review in Review.objects.filter(pk__in=review_ids).select_related("change", "service"):
            found[f"review:{review.pk}"] = review
    return found


def meetings_holding(keys: list[str]) -> dict[str, CabMeeting]:
    """For each key, the meeting not yet over whose agenda holds it (one query)."""
    items = (
        AgendaItem.objects.filter(
            key__in=keys,
            meeting__status__in=[CabMeeting.Status.SCHEDULED, CabMeeting.Status.IN_PROGRESS],
        )
        .select_related("meeting")
        .order_by("meeting__starts_at")
    )
    holding: dict[str, CabMeeting] = {}
    for item in items:
        holding.setdefault(item.key, item.meeting)
    return holding


def describe(kind: str, subject) -> dict:
    """Title, detail, link and services of a subject, as the queue and the agenda show it."""
    if kind in (Kind.ESCALATED_APPROVAL, Kind.CAB_APPROVAL):
        release = subject.request.release
        return {
            "title": f"{release.service.name} {release.version} → {release.environment.name}",
            "detail": f"Stage {subject.name} ({subject.approval_count}/"
            f"{subject.required_count}), change {release.change.ref}.",
            "url": _url("approvals:release_detail", release.pk),
            "services": release.service.name,
            "service_ids": {release.service_id},
            "release_id": release.pk,
            "change": release.change,
        }
    if kind == Kind.HIGH_RISK_CHANGE:
        services = list(subject.services.all())
        return {
            "title": f"{subject.ref} {subject.title}",
            "detail": f"High-risk {subject.get_type_display().lower()} change, "
            f"{subject.get_state_display().lower()}.",
            "url": _url("changes:change_detail", subject.pk),
            "services": ", ".join(s.name for s in services),
            "service_ids": {s.pk for s in services},
            "change": subject,
        }
    if kind == Kind.EMERGENCY_REVIEW:
        return {
            "title": f"Emergency {subject.change.ref} {subject.change.title}",
            "detail": f"Declared by {subject.declared_by}: {subject.justification}",
            "url": _url("emergencies:emergency_detail", subject.pk)
            or _url("changes:change_detail", subject.change_id),
            "services": subject.service.name,
            "service_ids": {subject.service_id},
            "change": subject.change,
        }
    return {
        "title": f"{subject.get_kind_display()} of {subject.change.ref}",
        "detail": subject.summary,
        "url": _url("changes:review_detail", subject.pk)
        or _url("changes:change_detail", subject.change_id),
        "services": subject.service.name,
        "service_ids": {subject.service_id},
        "release_id": subject.release_id,
        "change": subject.change,
        "review": subject,
    }


def page_rows(rows: list[tuple[str, int, datetime, bool]]) -> list[QueueRow]:
    """The page's rows with their subjects and the meeting each is on."""
    subjects = load_subjects([(kind, pk) for kind, pk, _, _ in rows])
    keys = [subject_key(kind, pk) for kind, pk, _, _ in rows]
    holding = meetings_holding(keys)
    shown = []
    for (kind, _pk, at, overdue), key in zip(rows, keys, strict=True):
        subject = subjects.get(key)
        if subject is None:
            continue  # gone between the page's two reads
        about = describe(kind, subject)
        shown.append(
            QueueRow(
                kind=kind,
                kind_label=Kind(kind).label,
                key=key,
                title=about["title"],
                detail=about["detail"],
                url=about["url"],
                services=about["services"],
                at=at,
                overdue=overdue,
                meeting=holding.get(key),
            )
        )
    return shown
