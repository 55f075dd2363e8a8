"""The model's steps about what holds releases back: administrators create hard and soft freezes
and end them early, ask for overrides and confirm them (or try to confirm their own); incidents
are opened on a service, acknowledged, resolved and reopened; emergencies are declared on an
emergency change (a time-bound exception) and ended early. Emergency changes naming an incident
are requested in `release_steps`; time lets freezes start, overrides and exceptions expire.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from approvals.emergencies.models import EmergencyException
from approvals.emergencies.services import declare_emergency, end_emergency
from approvals.models import Release
from changes.freezes.services import (
    FreezeInput,
    confirm_override,
    create_freeze,
    end_freeze,
    request_override,
)
from changes.incidents.services import IncidentReport, record_incident
from changes.models import ChangeRecord, Freeze, FreezeOverride, Incident
from governance.models import Environment, Service, Team
from tests.invariants.drawing import actors, release_indexes, requesters
from tests.invariants.oracle import DAILY_COUNT
from tests.invariants.organisation import SERVICES, TEAMS

OTHER = "the other administrator"
# Where a freeze applies: one service, a team's services, or every service.
FREEZE_SCOPES = (None, *SERVICES, *(f"team:{slug}" for slug in TEAMS))


def _scope_services(freeze: Freeze):
    """The services a freeze's scope names (all of them when it names none)."""
    services = Service.objects.all()
    if freeze.services.exists() or freeze.teams.exists():
        named = freeze.services.values("pk")
        return services.filter(pk__in=named) | services.filter(team__in=freeze.teams.all())
    return services


class HoldSteps:
    """Freezes, overrides and incidents come and go (mixed into the model)."""

    @rule(
        actor=actors,
        kind=st.sampled_from(("hard", "soft")),
        environment=st.sampled_from(("production", "staging", None)),
        scope=st.sampled_from(FREEZE_SCOPES),
        starts_in=st.sampled_from((0, 2, 30)),
        lasts=st.sampled_from((6, 1, 48)),
        zone=st.sampled_from(("UTC", "Europe/Berlin")),
        daily=st.booleans(),
        around=st.one_of(release_indexes, st.none()),
    )
    def freeze(self, actor, kind, environment, scope, starts_in, lasts, zone, daily, around):
        """An administrator freezes an environment (or all three), for one service, a team's
        services or everything, now or later, once or every day three times; often exactly
        where a release of the example goes (`around`)."""
        self.step("freeze")
        user = self.user(actor)
        if user is None:
            return
        if around is not None and self.releases:
            target = self.release(around)
            environment, scope = target.environment.slug, target.service.slug
        if daily:
            zone = "UTC"  # the oracle repeats occurrences by whole days
        start = self.clock.now() + timedelta(hours=starts_in)
        local = start.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        environments = Environment.objects.all()
        if environment is not None:
            environments = environments.filter(slug=environment)
        team = Team.objects.filter(slug=(scope or "")[5:]).first()
        data = FreezeInput(
            name=f"{kind.capitalize()} freeze {len(self.freezes) + 1}",
            kind=kind,
            time_zone=zone,
            local_start=local,
            local_end=local + timedelta(hours=lasts),
            environments=list(environments),
            reason="Frozen by the model",
            services=list(Service.objects.filter(slug=scope or "")),
            teams=[team] if team else [],
            recurrence=f"{DAILY_COUNT}3" if daily else "",
        )
        created = self.attempt("freeze", lambda: create_freeze(data=data, actor=user))
        if created is not None:
            self.freezes.append(created.pk)

    @precondition(lambda self: self.freezes)
    @rule(actor=actors, pick=st.integers(0, 3))
    def end_freeze(self, actor: str, pick: int) -> None:
        """An administrator ends a freeze early (or tries to end one already ended)."""
        self.step("end_freeze")
        user = self.user(actor)
        if user is None:
            return
        freeze = Freeze.objects.get(pk=self.freezes[pick % len(self.freezes)])
        self.attempt(
            "end freeze",
            lambda: end_freeze(freeze=freeze, actor=user, reason="Over early (the model)"),
        )

    @precondition(lambda self: self.freezes and self.releases)
    @rule(
        what=st.sampled_from(("ask_and_confirm", "ask", "confirm_waiting")),
        asker=actors,
        # Mostly the other administrator; the asker, or anyone, tries too (and is refused).
        confirmer=st.one_of(st.just(OTHER), actors),
        release=release_indexes,
        pick=st.integers(0, 3),
        hours=st.sampled_from((4, 1, 100)),
    )
    def override(self, what, asker, confirmer, release, pick, hours) -> None:
        """An administrator asks to let one release through a hard freeze; another confirms it
        (or the asker tries to, or it waits and is confirmed later, maybe after it expired)."""
        self.step("override")
        if what == "confirm_waiting":
            waiting = FreezeOverride.objects.filter(
                pk__in=self.overrides, confirmed_at__isnull=True
            ).order_by("pk")
            if waiting:
                chosen = waiting[pick % len(waiting)]
                self._confirm(chosen, confirmer, chosen.requested_by.username)
            return
        user = self.user(asker)
        if user is None:
            return
        freeze, target = self._held_release(pick, release)
        asked = self.attempt(
            "override request",
            lambda: request_override(
                freeze=freeze, release=target, actor=user, reason="Hotfix (model)", hours=hours
            ),
        )
        if asked is None:
            return
        self.overrides.append(asked.pk)
        if what == "ask_and_confirm":
            self._confirm(asked, confirmer, asker)

    def _held_release(self, pick: int, release: int) -> tuple[Freeze, Release]:
        """A hard freeze and a release it holds back when there is one (the pair an override
        is for); otherwise any freeze and any release, for the request to be refused."""
        freezes = list(Freeze.objects.filter(pk__in=self.freezes).order_by("pk"))
        releases = Release.objects.filter(pk__in=self.releases).order_by("pk")
        held = [
            (freeze, target)
            for freeze in freezes
            if freeze.kind == "hard" and freeze.ended_at is None
            for target in releases.filter(
                service__in=_scope_services(freeze),
                environment__in=freeze.environments.all(),
            )
        ]
        if held:
            return held[(pick + release) % len(held)]
        return freezes[pick % len(freezes)], self.release(release)

    @precondition(lambda self: self.freezes or self.incidents)
    @rule(
        requester=requesters,
        pick=st.integers(0, 7),
        change_type=st.sampled_from(("normal", "emergency", "standard")),
        names_incident=st.booleans(),
    )
    def request_while_held(self, requester, pick, change_type, names_incident) -> None:
        """The pipeline asks for a release a freeze in force covers, or one to production of a
        service an open incident is on (or depends on), maybe as the emergency fixing it."""
        self.step("request_while_held")
        now = self.clock.now()
        targets = [
            (service.slug, environment.slug, None)
            for freeze in Freeze.objects.filter(pk__in=self.freezes).in_force(now).order_by("pk")
            for service in _scope_services(freeze).order_by("pk")
            for environment in freeze.environments.order_by("pk")
        ]
        for incident in Incident.objects.filter(pk__in=self.incidents).open().order_by("pk"):
            for service in incident.services.order_by("pk"):
                for affected in (service, *service.dependents.order_by("pk")):
                    targets.append((affected.slug, "production", incident.pk))
        if not targets:
            return
        service, environment, incident = targets[pick % len(targets)]
        fixes = self.incidents.index(incident) if incident and names_incident else None
        self.request_release(
            requester, service, environment, "", None, change_type, "passed", False, fixes
        )

    @precondition(lambda self: self.releases)
    @rule(actor=actors, pick=release_indexes, hours=st.sampled_from((1, 4)))
    def declare(self, actor: str, pick: int, hours: int) -> None:
        """Someone declares an emergency on a release's emergency change: a release manager of
        the service or an administrator may, once per change; anyone else is refused."""
        self.step("declare")
        user = self.user(actor)
        emergencies = [
            pk
            for pk in self.releases
            if Release.objects.filter(pk=pk, change__type=ChangeRecord.Type.EMERGENCY).exists()
        ]
        if user is None or not emergencies:
            return
        target = Release.objects.select_related("service", "change").get(
            pk=emergencies[pick % len(emergencies)]
        )
        self.attempt(
            "emergency declaration",
            lambda: declare_emergency(
                actor=user,
                service=target.service,
                title="",
                justification="Customers cannot pay (the model).",
                outage="Checkout down (the model)",
                controls=["extra_monitoring"],
                hours=hours,
                change=target.change,
            ),
        )

    @rule(actor=actors, pick=st.integers(0, 3))
    def end_emergency_early(self, actor: str, pick: int) -> None:
        """Someone ends an emergency's exception early (or one already over: refused)."""
        self.step("end_emergency_early")
        user = self.user(actor)
        emergencies = list(EmergencyException.objects.order_by("pk"))
        if user is None or not emergencies:
            return
        emergency = emergencies[pick % len(emergencies)]
        self.attempt(
            "emergency end",
            lambda: end_emergency(emergency=emergency, actor=user, reason="Fixed (the model)"),
        )

    def _confirm(self, override: FreezeOverride, confirmer: str, asker: str) -> None:
        if confirmer == OTHER:
            confirmer = "adam" if asker == "ada" else "ada"
        user = self.user(confirmer)
        if user is not None:
            self.attempt(
                "override confirmation",
                lambda: confirm_override(override=override, actor=user),
            )

    @rule(
        event=st.sampled_from(("open", "acknowledge", "resolve", "reopen")),
        pick=st.integers(0, 3),
        service=st.sampled_from(SERVICES),
        priority=st.sampled_from(("P1", "P3", "")),
        urgency=st.sampled_from(("high", "low", "")),
    )
    def incident(self, event, pick, service, priority, urgency) -> None:
        """An incident is opened on a service (P1, or high urgency, blocks), or an open one is
        acknowledged, resolved or reopened (and may name another service as it does)."""
        self.step("incident")
        if event == "open" or not self.incidents:
            external_id, status = f"INC-{len(self.incidents) + 1}", Incident.Status.TRIGGERED
        else:
            known = Incident.objects.get(pk=self.incidents[pick % len(self.incidents)])
            external_id = known.external_id
            status = {
                "acknowledge": Incident.Status.ACKNOWLEDGED,
                "resolve": Incident.Status.RESOLVED,
                "reopen": Incident.Status.TRIGGERED,
            }[event]
        report = IncidentReport(
            source=Incident.Source.API,
            external_id=external_id,
            title=f"Incident on {service}",
            status=status,
            priority=priority,
            urgency=urgency,
            services=(Service.objects.get(slug=service),),
        )
        recorded = self.attempt(
            f"incident {event}",
            lambda: record_incident(report=report, actor="model", reporter=self.user("dave")),
        )
        if recorded is not None and recorded[1]:
            self.incidents.append(recorded[0].pk)
