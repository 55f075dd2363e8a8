"""Freeze windows and the overrides that let one release through them.

A freeze is written in its own time zone: its start and end are wall times there, and a
recurring freeze (an RFC 5545 RRULE, with EXDATEs) repeats those wall times, so a weekend
freeze starting Friday 18:00 in Europe/Berlin starts at 18:00 Berlin time in winter and in
summer alike. Instants (UTC) are computed per occurrence; only the first occurrence's are stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rruleset, rrulestr
from django.db import connection, models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from changes.wall_time import WALL_FORMAT, wall_to_instant
from governance.models import Environment, Service, Team, User

# The query of FreezeQuerySet.holding_for_gate; table names filled in from the models' _meta.
GATE_SQL = """
SELECT f.*, EXISTS (
    SELECT 1 FROM {override} o
    WHERE o.freeze_id = f.id AND o.release_id = %s
      AND o.confirmed_at IS NOT NULL AND o.expires_at > %s
) AS overridden
FROM {freeze} f
WHERE f.kind = %s AND f.starts_at <= %s
  AND (f.last_ends_at IS NULL OR f.last_ends_at > %s)
  AND (f.ended_at IS NULL OR f.ended_at > %s)
  AND EXISTS (SELECT 1 FROM {environments} e WHERE e.freeze_id = f.id AND e.environment_id = %s)
  AND (
    EXISTS (SELECT 1 FROM {services} s WHERE s.freeze_id = f.id AND s.service_id = %s)
    OR EXISTS (
        SELECT 1 FROM {teams} t JOIN {service} sv ON sv.team_id = t.team_id
        WHERE t.freeze_id = f.id AND sv.id = %s
    )
    OR (
        NOT EXISTS (SELECT 1 FROM {services} s WHERE s.freeze_id = f.id)
        AND NOT EXISTS (SELECT 1 FROM {teams} t WHERE t.freeze_id = f.id)
    )
  )
ORDER BY f.starts_at, f.id
"""


class FreezeQuerySet(models.QuerySet):
    def in_force(self, now: datetime) -> FreezeQuerySet:
        """Freezes that may hold an occurrence at `now`: started, not past their last
        occurrence, not ended early. Whether an occurrence covers `now` is `occurrence_at`."""
        return (
            self.filter(starts_at__lte=now)
            .filter(Q(last_ends_at__isnull=True) | Q(last_ends_at__gt=now))
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=now))
        )

    def covering(self, service_id: int, environment_id: int) -> FreezeQuerySet:
        """Freezes whose scope holds this service in this environment. EXISTS, not joins: a
        freeze scoped to several services or teams must come back once."""
        through = Freeze.environments.through.objects.filter(
            freeze_id=OuterRef("pk"), environment_id=environment_id
        )
        services = Freeze.services.through.objects.filter(freeze_id=OuterRef("pk"))
        teams = Freeze.teams.through.objects.filter(freeze_id=OuterRef("pk"))
        team_of_service = Service.objects.filter(pk=service_id).values("team_id")
        return self.filter(Exists(through)).filter(
            Exists(services.filter(service_id=service_id))
            | Exists(teams.filter(team_id__in=team_of_service))
            | (~Exists(services) & ~Exists(teams))
        )

    def holding_for_gate(
        self, release_id: int, service_id: int, environment_id: int, now: datetime
    ) -> models.RawQuerySet:
        """`in_force(now).covering(...)` for hard freezes, each with `overridden` (a confirmed
        override of this release in force), written as SQL: the gate asks at every pipeline
        run, and compiling the same query through the ORM's EXISTS expressions took ~4 ms of
        Python, five times the query itself."""
        moment = connection.ops.adapt_datetimefield_value(now)
        names = {
            "freeze": Freeze._meta.db_table,
            "override": FreezeOverride._meta.db_table,
            "environments": Freeze.environments.through._meta.db_table,
            "services": Freeze.services.through._meta.db_table,
            "teams": Freeze.teams.through._meta.db_table,
            "service": Service._meta.db_table,
        }
        sql = GATE_SQL.format(**names)
        params = [release_id, moment, Freeze.Kind.HARD, moment, moment, moment]
        params += [environment_id, service_id, service_id]
        return self.model.objects.raw(sql, params)

    def with_list_related(self) -> FreezeQuerySet:
        return self.select_related("created_by", "ended_by").prefetch_related(
            "environments", "services", "teams"
        )


class Freeze(models.Model):
    """A window in which releases to some environments (of some services) are held back."""

    class Kind(models.TextChoices):
        HARD = "hard", "Hard (only emergencies inside their exception pass)"
        SOFT = "soft", "Soft (a release manager's approval is added)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.HARD)
    time_zone = models.CharField(max_length=64, default="UTC")
    # The first occurrence, as instants; the wall times are these read in `time_zone`.
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    recurrence = models.CharField(
        max_length=500, blank=True, help_text="An RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=FR."
    )
    exdates = models.JSONField(
        default=list, blank=True, help_text="Skipped occurrences, as local start times."
    )
    # When the last occurrence ends; empty for a rule without COUNT or UNTIL (forever).
    last_ends_at = models.DateTimeField(null=True, blank=True, db_index=True)
    environments = models.ManyToManyField(Environment, related_name="freezes")
    services = models.ManyToManyField(Service, related_name="freezes", blank=True)
    teams = models.ManyToManyField(Team, related_name="freezes", blank=True)
    reason = models.TextField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    end_reason = models.TextField(blank=True)

    objects = FreezeQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def local_start(self) -> datetime:
        return self.starts_at.astimezone(self.zone).replace(tzinfo=None)

    @property
    def local_end(self) -> datetime:
        return self.ends_at.astimezone(self.zone).replace(tzinfo=None)

    @property
    def wall_duration(self) -> timedelta:
        """How long each occurrence lasts on the local clock (a night is 8 wall hours even
        when the clocks change during it)."""
        return self.local_end - self.local_start

    @property
    def is_recurring(self) -> bool:
        return bool(self.recurrence)

    def rule(self) -> rruleset:
        """The occurrences' local start times (naive wall times in `time_zone`)."""
        rules = rruleset()
        rules.rrule(rrulestr(self.recurrence, dtstart=self.local_start))
        for wall in self.exdates:
            rules.exdate(datetime.strptime(wall, WALL_FORMAT))
        return rules

    def occurrence_at(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence (start, end as UTC instants) covering `moment`, or None. An early
        end cuts the occurrence short."""
        if self.ended_at is not None and moment >= self.ended_at:
            return None
        for start, end in self._occurrences_near(moment):
            if start <= moment < end:
                if self.ended_at is not None:
                    end = min(end, self.ended_at)
                return start, end
        return None

    def occurrences_between(
        self, after: datetime, before: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Occurrences overlapping [after, before), as UTC instants (for listing)."""
        if not self.is_recurring:
            pairs = [(self.starts_at, self.ends_at)]
        else:
            zone, duration = self.zone, self.wall_duration
            low = after.astimezone(zone).replace(tzinfo=None) - duration - timedelta(days=1)
            high = before.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
            pairs = [
                (wall_to_instant(s, zone), wall_to_instant(s + duration, zone))
                for s in self.rule().between(low, high, inc=True)
            ]
        return [(s, e) for s, e in pairs if s < before and e > after]

    def _occurrences_near(self, moment: datetime) -> list[tuple[datetime, datetime]]:
        return self.occurrences_between(moment, moment + timedelta(microseconds=1))

    def next_occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in force at `now` or the next one to come (within a year)."""
        pairs = self.occurrences_between(now, now + timedelta(days=366))
        if self.ended_at is not None:
            pairs = [(s, min(e, self.ended_at)) for s, e in pairs if s < self.ended_at]
        return pairs[0] if pairs else None

    def moment_label(self, instant: datetime) -> str:
        """An instant as the freeze's local time with its zone, and in UTC."""
        text = f"{instant.astimezone(self.zone):%Y-%m-%d %H:%M} {self.time_zone}"
        if self.time_zone != "UTC":
            text += f" ({instant.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        return text

    def window_label(self, start: datetime, end: datetime) -> str:
        return f"{self.moment_label(start)} → {self.moment_label(end)}"

    def scope_label(self) -> str:
        names = [s.name for s in self.services.all()] + [
            f"{t.name}'s services" for t in self.teams.all()
        ]
        environments = ", ".join(e.name for e in self.environments.all())
        return f"{', '.join(names) or 'all services'} in {environments}"


class FreezeOverrideQuerySet(models.QuerySet):
    def in_force(self, now: datetime) -> FreezeOverrideQuerySet:
        """Confirmed overrides that have not expired."""
        return self.filter(confirmed_at__isnull=False, expires_at__gt=now)


class FreezeOverride(models.Model):
    """Lets one named release through one freeze, asked by one administrator with a written
    reason and confirmed by another, until it expires.

    The release is named by id, not by a foreign key: releases belong to the approvals app,
    which sits above this one and reads overrides, never the other way round.
    """

    freeze = models.ForeignKey(Freeze, on_delete=models.PROTECT, related_name="overrides")
    release_id = models.PositiveBigIntegerField(db_index=True)
    release_label = models.CharField(max_length=300)
    reason = models.TextField()
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    confirmed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    objects = FreezeOverrideQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"Override of {self.freeze} for {self.release_label}"

    def status(self, now: datetime | None = None) -> str:
        """'awaiting confirmation', 'in force' or 'expired'."""
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "in force" if self.confirmed_at else "awaiting confirmation"
