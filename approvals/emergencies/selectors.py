"""What the emergency pages, the release page and the API read about emergencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db.models import Case, Q, QuerySet, Value, When

from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import may_declare, policy_emergency_settings
from changes.records.models import ChangeRecord
from changes.reviews.models import Review
from governance.authority.models import holds_everywhere
from governance.authority.selectors import is_auditor
from governance.authority.services import is_administrator
from governance.models import Service, User
from governance.policy.engine import EmergencySettings


@dataclass(frozen=True)
class EmergencyFilters:
    state: str = ""  # "in_force" or "ended"
    review: str = ""  # "pending", "justified", "not_justified"
    service: str = ""  # a slug
    q: str = ""


def emergencies_visible_to(user: User) -> QuerySet[EmergencyException]:
    """Emergencies on the services whose releases `user` may see (all for people who see every
    service: administrators, auditors, global roles)."""
    emergencies = EmergencyException.objects.all()
    if user.is_authenticated and holds_everywhere(user, "view"):
        return emergencies
    return emergencies.filter(service__in=Service.objects.restrict(user, "view"))


def with_list_related(emergencies: QuerySet, now: datetime) -> QuerySet:
    """The list's rows in one query: in force first (soonest to end), then the newest."""
    in_force = Q(starts_at__lte=now, ends_at__gt=now)
    return (
        emergencies.select_related("change", "service", "declared_by", "incident", "reviewed_by")
        .annotate(in_force=Case(When(in_force, then=Value(True)), default=Value(False)))
        .order_by(
            Case(When(in_force, then=Value(0)), default=Value(1)),
            Case(When(in_force, then="ends_at")),
            "-starts_at",
            "-pk",
        )
    )


def search_emergencies(emergencies: QuerySet, filters: EmergencyFilters, now: datetime) -> QuerySet:
    if filters.state == "in_force":
        emergencies = emergencies.filter(starts_at__lte=now, ends_at__gt=now)
    elif filters.state == "ended":
        emergencies = emergencies.filter(ends_at__lte=now)
    if filters.review:
        stored = "" if filters.review == "pending" else filters.review
        emergencies = emergencies.filter(secondary_review=stored)
    if filters.service:
        emergencies = emergencies.filter(service__slug=filters.service)
    if filters.q:
        emergencies = emergencies.filter(
            Q(change__ref__icontains=filters.q)
            | Q(change__title__icontains=filters.q)
            | Q(justification__icontains=filters.q)
        )
    return emergencies


def declarable_services(user: User) -> QuerySet[Service]:
    """Services on which `user` may declare an emergency (release manager, or administrator)."""
    if not user.is_authenticated or not user.is_active or is_auditor(user):
        return Service.objects.none()
    if is_administrator(user):
        return Service.objects.order_by("name")
    return Service.objects.restrict(user, "request").order_by("name")


def may_end(user: User, emergency: EmergencyException) -> bool:
    """The declarer, release managers of the service and administrators end an emergency."""
    return emergency.declared_by_id == user.pk or may_declare(user, emergency.service)


def control_rows(
    emergency: EmergencyException, settings: EmergencySettings | None = None
) -> list[str]:
    """The chosen controls with the policy's labels (a key the policy dropped shows as is)."""
    settings = settings or policy_emergency_settings()
    return [settings.control_label(key) for key in emergency.controls]


def window(emergency: EmergencyException, time_zone: str, now: datetime) -> dict:
    """The exception's window in UTC and in the viewer's time zone, and whether it is on."""
    zone = ZoneInfo(time_zone or "UTC")
    local = f"{emergency.starts_at.astimezone(zone):%Y-%m-%d %H:%M} to "
    local += f"{emergency.ends_at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"
    return {
        "utc": f"{emergency.starts_at:%Y-%m-%d %H:%M} to {emergency.ends_at:%Y-%m-%d %H:%M} UTC",
        "local": local if zone.key != "UTC" else "",
        "in_force": emergency.in_force_at(now),
        "ended": emergency.ends_at <= now,
    }


def post_mortem(emergency: EmergencyException) -> Review | None:
    """The change's post-mortem, when one was opened (after its deployment)."""
    return (
        Review.objects.filter(change_id=emergency.change_id, kind=Review.Kind.POST_MORTEM)
        .order_by("-opened_at", "-pk")
        .first()
    )


def release_panel(change: ChangeRecord, user: User, now: datetime) -> dict | None:
    """The release page's emergency panel for a release of `change` (None when the change
    holds no emergency). Only emergency changes hold one: others cost no query."""
    if change.type != ChangeRecord.Type.EMERGENCY:
        return None
    emergency = (
        EmergencyException.objects.filter(change_id=change.pk)
        .select_related("change", "incident", "declared_by", "reviewed_by")
        .first()
    )
    if emergency is None:
        return None
    review = post_mortem(emergency)
    return {
        "emergency": emergency,
        "window": window(emergency, getattr(user, "time_zone", "UTC"), now),
        "controls": control_rows(emergency),
        "post_mortem": review,
        "post_mortem_url": f"/changes/reviews/{review.pk}/" if review else "",
    }
