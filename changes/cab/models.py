"""The Change Advisory Board at work: its meeting series, meetings, agendas and outcomes.

A meeting's agenda is built from the CAB queue (escalated approvals, high-risk changes,
emergency changes awaiting secondary review, reviews due) and from items added by hand. An
outcome is recorded per item by a member; an outcome that approves or rejects a release acts
through the approvals app's decision service, as that member's own decision.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from governance.authority.selectors import is_auditor
from governance.authority.services import is_administrator
from governance.models import Service, User


class CabSchedule(models.Model):
    """A recurring CAB meeting (for example every Tuesday at 14:00 in Europe/London).

    The rule is an RFC 5545 RRULE read in `time_zone`, so a weekly meeting stays at 14:00 local
    time across daylight-saving changes. Meetings are materialised from it ahead of time.
    """

    name = models.CharField(max_length=100, unique=True)
    rrule = models.CharField(max_length=200, help_text="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=TU")
    first_start = models.DateTimeField(help_text="The first meeting's start (DTSTART).")
    duration_minutes = models.PositiveSmallIntegerField(default=60)
    time_zone = models.CharField(max_length=64, default="UTC")
    quorum = models.PositiveSmallIntegerField(
        default=2, help_text="Members who must be present before outcomes can be recorded."
    )
    members = models.ManyToManyField(User, related_name="cab_schedules", blank=True)
    services = models.ManyToManyField(
        Service, related_name="cab_schedules", blank=True, help_text="Empty: every service."
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class CabMeetingQuerySet(models.QuerySet):
    def restrict(self, user: User) -> CabMeetingQuerySet:
        """Meetings `user` may see: their own (as a member), those covering a service they sit
        on the CAB for (a meeting naming no services covers every one); administrators and
        auditors see all. EXISTS, not joins, so a meeting comes back once."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if is_administrator(user) or is_auditor(user):
            return self.all()
        cab_services = Service.objects.restrict(user, "cab")
        links = CabMeeting.services.through.objects.filter(cabmeeting_id=OuterRef("pk"))
        member = CabMeeting.members.through.objects.filter(cabmeeting_id=OuterRef("pk"), user=user)
        covered = Exists(links.filter(service__in=cab_services))
        if cab_services.exists():
            covered |= ~Exists(links)
        return self.filter(Exists(member) | covered)

    def upcoming(self, now) -> CabMeetingQuerySet:
        """Not yet over: scheduled or running, soonest first."""
        return self.filter(
            status__in=[CabMeeting.Status.SCHEDULED, CabMeeting.Status.IN_PROGRESS],
            ends_at__gt=now,
        ).order_by("starts_at", "pk")


class CabMeeting(models.Model):
    """One CAB meeting: its time, members and quorum, attendance, agenda and minutes."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        IN_PROGRESS = "in_progress", "In progress"
        CLOSED = "closed", "Closed"
        CANCELLED = "cancelled", "Cancelled"

    schedule = models.ForeignKey(
        CabSchedule, on_delete=models.PROTECT, null=True, blank=True, related_name="meetings"
    )
    title = models.CharField(max_length=150)
    starts_at = models.DateTimeField(db_index=True)
    ends_at = models.DateTimeField()
    time_zone = models.CharField(max_length=64, default="UTC")
    quorum = models.PositiveSmallIntegerField(default=2)
    members = models.ManyToManyField(User, related_name="cab_meetings", blank=True)
    attendees = models.ManyToManyField(User, related_name="cab_meetings_attended", blank=True)
    services = models.ManyToManyField(Service, related_name="cab_meetings", blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    chair = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True, help_text="General minutes, beyond each item's own.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = CabMeetingQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "starts_at"], name="one_meeting_per_schedule_occurrence"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="cab_meeting_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.starts_at:%Y-%m-%d %H:%M} UTC)"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def local_start(self):
        return self.starts_at.astimezone(self.zone)

    @property
    def local_end(self):
        return self.ends_at.astimezone(self.zone)


class AgendaItem(models.Model):
    """One item on a meeting's agenda, and its outcome once recorded.

    `key` names what the item is about ("stage:12", "change:4", "review:9", "emergency:3",
    "manual:<uuid>"), unique per meeting, so building the agenda twice adds nothing twice.
    Releases live in the approvals app, above this one: an item about one holds its id.
    """

    class Kind(models.TextChoices):
        ESCALATED_APPROVAL = "escalated_approval", "Escalated approval"
        CAB_APPROVAL = "cab_approval", "CAB approval"
        HIGH_RISK_CHANGE = "high_risk_change", "High-risk change"
        EMERGENCY_REVIEW = "emergency_review", "Emergency secondary review"
        POST_IMPLEMENTATION_REVIEW = "post_implementation_review", "Post-implementation review"
        POST_MORTEM = "post_mortem", "Post-mortem"
        OTHER = "other", "Other"

    class Outcome(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DEFERRED = "deferred", "Deferred"
        NEEDS_INFORMATION = "needs_information", "Needs information"
        REVIEWED = "reviewed", "Reviewed"
        JUSTIFIED = "justified", "Justified"
        NOT_JUSTIFIED = "not_justified", "Not justified (actions set)"

    meeting = models.ForeignKey(CabMeeting, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=60)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=250)
    detail = models.TextField(blank=True)
    change = models.ForeignKey(
        "changes.ChangeRecord",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="agenda_items",
    )
    release_id = models.PositiveIntegerField(
        null=True, blank=True, db_index=True, help_text="The release this item is about."
    )
    review = models.ForeignKey(
        "changes.Review",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="agenda_items",
    )
    added_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: added from the CAB queue by Signoff.",
    )
    added_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    minutes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["meeting", "position", "added_at"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "key"], name="one_agenda_item_per_subject")
        ]

    def __str__(self) -> str:
        return self.title
