"""A stateful model of the organisation: random sequences of what people, administrators, the
identity provider, pipelines and time do, driven through the real services, the pipeline API,
the release page and SCIM on PostgreSQL, with every invariant checked after every step.

Each example starts from the organisation in `organisation.py` and runs inside a savepoint that
is rolled back at its end. The clock is the model's: `django.utils.timezone.now` answers the
model's time, which moves a minute with each step and further when a `time_passes` step says so.

The steps live with their subject and are mixed in here: `people_steps` (the identity provider,
grants, delegations, the catalogue, policies), `release_steps` (requests, decisions,
withdrawals, deployments, change records moved by hand), `hold_steps` (freezes, overrides,
incidents), `measure_steps` (alerts, quarterly reviews, workflow ratings), `time_steps` (time and
the periodic tasks), `fault_steps` (work the broker hands out twice); `actions` holds what they
act through and `drawing` what they draw from.

Rules only act; they assert little themselves (a refusal must change nothing, an eligible
person's decision must be recorded, a few things only the acting step can see). Everything else
is judged after each step by `checks.check_all` and `hold_checks.check_holds` against the
database, the ledger and the gate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, invariant

from approvals.models import Release
from governance.identity import services as identity
from governance.models import IdentityGroup, Service, Team, User
from tests.invariants import fingerprint
from tests.invariants.actions import Actions
from tests.invariants.cab_checks import check_cab
from tests.invariants.cab_steps import CabSteps
from tests.invariants.checks import Record, Requests, check_all, check_gate
from tests.invariants.cluster_checks import check_clusters
from tests.invariants.cluster_steps import ClusterSteps
from tests.invariants.drawing import TRIGGERS
from tests.invariants.evidence_checks import check_evidence
from tests.invariants.evidence_steps import EvidenceSteps
from tests.invariants.fault_steps import FaultSteps
from tests.invariants.hold_checks import check_holds
from tests.invariants.hold_steps import HoldSteps
from tests.invariants.measure_checks import check_measuring
from tests.invariants.measure_steps import MeasureSteps
from tests.invariants.oracle import World
from tests.invariants.people_steps import PeopleSteps
from tests.invariants.pipeline_checks import check_pipelines
from tests.invariants.pipeline_steps import PipelineSteps
from tests.invariants.release_steps import ReleaseSteps
from tests.invariants.time_steps import TimeSteps

FAILURES = Path(__file__).with_name("failures")
PROFILE = "signoff-model"
settings.register_profile(
    PROFILE,
    settings(
        # Failing examples are kept in the repository: commit them and they replay first on
        # every later run, as regression tests.
        database=DirectoryBasedExampleDatabase(FAILURES),
        deadline=None,
        max_examples=10,
        stateful_step_count=40,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    ),
)


class Clock:
    """The model's time: what `timezone.now()` answers while an example runs."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.at


class Organisation(
    PeopleSteps,
    ReleaseSteps,
    HoldSteps,
    MeasureSteps,
    TimeSteps,
    FaultSteps,
    ClusterSteps,
    CabSteps,
    EvidenceSteps,
    PipelineSteps,
    Actions,
    RuleBasedStateMachine,
):
    """People join, leave and come back, change teams, hold and lose authority, delegate,
    publish policies, request, decide, withdraw and deploy releases, move change records, freeze
    and override, open and resolve incidents, acknowledge alerts, review quarters and rate
    workflows while time moves on."""

    last_trail: list[str] = []  # the rules of the latest example, for the broken-rule test

    def __init__(self) -> None:
        super().__init__()
        # Everything an example writes is rolled back at its end (teardown).
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.clock = Clock()
        self._clock = mock.patch("django.utils.timezone.now", self.clock.now)
        self._clock.start()
        self.people = dict(User.objects.values_list("username", "pk"))
        self.services = dict(Service.objects.values_list("slug", "pk"))
        self.teams = dict(Team.objects.values_list("slug", "pk"))
        self.groups = dict(IdentityGroup.objects.values_list("name", "pk"))
        self.record = Record()
        self.state: dict[str, str] = {}
        self.client = Client()
        _, self.scim_key = identity.issue_scim_token(name="okta", actor=None)
        self.tokens: dict[int, str] = {}
        self.browsers: dict[int, Client] = {}
        # The releases of the starting organisation, then those the example asks for.
        self.releases = list(Release.objects.order_by("pk").values_list("pk", flat=True))
        for pk, name in Release.objects.values_list("pk", "triggered_by_name"):
            self.record.meant_trigger[pk] = TRIGGERS.get(name)
        # Freezes, overrides and incidents the example creates (none at the start).
        self.freezes: list[int] = []
        self.overrides: list[int] = []
        self.incidents: list[int] = []
        self.trail: list[str] = []
        Organisation.last_trail = self.trail
        self.setup_cluster()
        self.setup_cab()
        self.setup_evidence()
        self.setup_pipeline()

    def teardown(self) -> None:
        self._clock.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- After every step ---------------------------------------------------------------------

    @invariant()
    def every_invariant_holds(self) -> None:
        """Every invariant after every step. When the step wrote nothing (the digest of every
        table the checks read is unchanged), only what time alone can change is re-judged."""
        now = self.clock.now()
        state = fingerprint.take()
        wrote = state != self.state
        if wrote:
            self.world, self.requests = World.read(now), Requests.read()
            answers = check_all(self.world, self.record, self.requests)
            check_measuring(self.world, self.record, self.requests)
            self.state = state
        else:
            self.world.now = now
            answers = check_gate(self.world, self.requests)
        check_holds(self.world, self.record, self.requests, answers, wrote=wrote)
        for check in (check_clusters, check_cab, check_evidence, check_pipelines):
            check(self.world, self.record, self.requests, answers, wrote=wrote)
        self.clock.at += timedelta(minutes=1)


def organisation() -> Organisation:
    """The model, fresh for each example. Hypothesis keys its saved examples on this function's
    source, which stays the same when the model grows: saved failures keep replaying."""
    return Organisation()
