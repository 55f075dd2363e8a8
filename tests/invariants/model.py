"""A stateful model of the organisation: random sequences of what people, administrators, the
identity provider, pipelines and time do, driven through the real services, the pipeline API,
the release page and SCIM on PostgreSQL, with every invariant checked after every step.

Each example starts from the organisation in `organisation.py` and runs inside a savepoint that
is rolled back at its end. The clock is the model's: `django.utils.timezone.now` answers the
model's time, which moves a minute with each step and further when a `time_passes` step says so.

Rules only act; they assert little themselves (a refusal must change nothing, an eligible
person's decision must be recorded, a few things only the acting step can see). Everything else
is judged after each step by `checks.check_all` against the database and the ledger.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from approvals.models import ApprovalRequest, Deployment, Release
from approvals.services import expire_requests, reresolve_open_stages
from changes.models import ChangeRecord
from changes.records.services import set_change_state
from governance.authority.services import (
    create_delegation,
    grant_role,
    revoke_delegation,
    revoke_role,
)
from governance.authority.services import (
    expire_role_grants as expire_grants,
)
from governance.catalogue import forms as catalogue_forms
from governance.catalogue.services import save_entry
from governance.exceptions import GovernanceError
from governance.identity import services as identity
from governance.identity.tokens import issue_token
from governance.models import (
    ApiToken,
    Delegation,
    GroupRoleMapping,
    IdentityGroup,
    Policy,
    PolicyProposal,
    Role,
    RoleAssignment,
    Service,
    Team,
    User,
)
from governance.policy import services as policy_changes
from tests import factories
from tests.invariants import fingerprint
from tests.invariants.checks import Record, Requests, check_all, check_gate, require
from tests.invariants.oracle import World, conflicted
from tests.invariants.organisation import (
    ADMINISTRATORS,
    BOT,
    GROUPS,
    LOOK_ALIKE,
    PEOPLE,
    SERVICES,
    TEAMS,
    policy_sources,
)

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

SCIM_JSON = "application/scim+json"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
REFUSALS = {400, 403, 404, 409, 422}

# What the strategies draw from. Administrators come first so that shrinking prefers them.
people = st.sampled_from(PEOPLE)
# Most administrative acts come from administrators; anyone may try (and must be refused).
actors = st.one_of(st.sampled_from(ADMINISTRATORS), st.sampled_from(ADMINISTRATORS), people)
# Most decisions come from people who approve something; anyone may try.
deciders = st.one_of(st.sampled_from(("alice", "bob", "carol", "frank")), people)
requesters = st.one_of(st.sampled_from((BOT, "dave")), st.sampled_from((BOT, *PEOPLE)))
services = st.sampled_from(SERVICES)
# Staging first: a shrunk example prefers the one-approver environment.
environments = st.sampled_from(("staging", "production", "dev"))
release_indexes = st.integers(min_value=0, max_value=7)
# Names a pipeline may send as `triggered_by`: people as they are spelt, in capitals, as e-mail,
# as a look-alike, someone who has not joined yet, and nobody at all.
TRIGGERS = {
    "": None,
    **{name: name for name in PEOPLE},
    "ALICE": "alice",
    "bob@example.com": "bob",
    LOOK_ALIKE: "alice",
    "ghost": None,
}
ROLES = (Role.APPROVER, Role.CAB_MEMBER, Role.RELEASE_MANAGER, Role.AUDITOR, Role.ADMINISTRATOR)
SCOPES = ("everything", *SERVICES, *(f"team:{slug}" for slug in TEAMS))

# Outcomes seen across a whole run, so the test can show the model reached the states it should.
tally: Counter[str] = Counter()


class Clock:
    """The model's time: what `timezone.now()` answers while an example runs."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.at


class Organisation(RuleBasedStateMachine):
    """People join, leave and come back, hold and lose authority, delegate, publish policies,
    request, decide, withdraw and deploy releases while time moves on."""

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
        self.trail: list[str] = []
        Organisation.last_trail = self.trail

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
        if state != self.state:
            self.world, self.requests = World.read(now), Requests.read()
            check_all(self.world, self.record, self.requests)
            self.state = state
        else:
            self.world.now = now
            check_gate(self.world, self.requests)
        self.clock.at += timedelta(minutes=1)

    # --- Helpers ------------------------------------------------------------------------------

    def step(self, name: str) -> None:
        self.trail.append(name)

    def user(self, name: str) -> User | None:
        pk = self.people.get(name)
        return User.objects.get(pk=pk) if pk else None

    def release(self, index: int) -> Release:
        return Release.objects.select_related("approval", "change", "service").get(
            pk=self.releases[index % len(self.releases)]
        )

    def attempt(self, what: str, call):
        """Run a service call; a domain refusal must leave every table as it was."""
        before = fingerprint.take()
        try:
            result = call()
        except GovernanceError as exc:
            changed = fingerprint.changed(before)
            require(not changed, 7, f"refused {what} ({exc.message}) still changed {changed}")
            tally[f"refused {what}: {exc.code}"] += 1
            return None
        tally[what] += 1
        return result

    def answered(self, what: str, response, ok: tuple[int, ...], before: dict) -> bool:
        """Whether an HTTP call did its work; a refusal must be clear and change nothing."""
        if response.status_code in ok:
            tally[what] += 1
            return True
        require(
            response.status_code in REFUSALS or response.status_code == 302,
            7,
            f"{what} answered {response.status_code}: {response.content[:300]!r}",
        )
        changed = fingerprint.changed(before)
        require(not changed, 7, f"refused {what} ({response.status_code}) changed {changed}")
        tally[f"refused {what}: {response.status_code}"] += 1
        return False

    def token(self, name: str) -> str | None:
        """A working API token of an active person, issued by themselves when first needed."""
        user = self.user(name)
        if user is None or not user.is_active:
            return None
        key = self.tokens.get(user.pk)
        if key is None or not ApiToken.objects.active().filter(key_hash=ApiToken.hash_key(key)):
            _, key = issue_token(user=user, name="model", actor=user)
            self.tokens[user.pk] = key
        return key

    def api(self, name: str, path: str, body: dict | None = None, **headers):
        """GET (no body) or POST JSON to the pipeline API as `name`; None when they cannot."""
        key = self.token(name)
        if key is None:
            return None
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}", **headers}
        if body is None:
            return self.client.get(f"/api/v1/{path}", **auth)
        return self.client.post(
            f"/api/v1/{path}", json.dumps(body), content_type="application/json", **auth
        )

    def scim(self, method: str, path: str, body: dict):
        call = getattr(self.client, method)
        return call(
            f"/scim/v2/{path}",
            json.dumps(body),
            content_type=SCIM_JSON,
            HTTP_AUTHORIZATION=f"Bearer {self.scim_key}",
        )

    def browser(self, user: User) -> Client:
        if user.pk not in self.browsers:
            browser = Client()
            browser.force_login(user)
            self.browsers[user.pk] = browser
        return self.browsers[user.pk]

    # --- People: the identity provider ----------------------------------------------------------

    @rule(
        event=st.sampled_from(("join", "leave", "come_back", "join_group", "leave_group")),
        name=st.sampled_from((*PEOPLE, LOOK_ALIKE)),
        group=st.sampled_from(GROUPS),
    )
    def identity_provider(self, event: str, name: str, group: str) -> None:
        """The identity provider (SCIM) provisions a person, switches one off or back on, or
        changes a group's members."""
        self.step("identity_provider")
        if event == "join":
            self._join(name)
        elif name not in self.people:
            return
        elif event in ("leave", "come_back"):
            self._set_active(name, event == "come_back")
        else:
            self._group_membership(name, group, event == "join_group")

    def _join(self, name: str) -> None:
        email = f"{name}@example.com" if name.isascii() else "look-alike@example.com"
        body = {
            "schemas": [USER_SCHEMA],
            "userName": name,
            "name": {"givenName": name.capitalize(), "familyName": "Model"},
            "emails": [{"primary": True, "value": email}],
            "active": True,
        }
        before = fingerprint.take()
        response = self.scim("post", "Users", body)
        if self.answered("join", response, (201,), before):
            require(name != LOOK_ALIKE, 1, f"a look-alike of alice ({name!r}) was provisioned")
            self.people[name] = int(response.json()["id"])

    def _set_active(self, name: str, active: bool) -> None:
        operation = {"op": "replace", "path": "active", "value": active}
        before = fingerprint.take()
        response = self.scim(
            "patch",
            f"Users/{self.people[name]}",
            {"schemas": [PATCH_SCHEMA], "Operations": [operation]},
        )
        done = self.answered("come back" if active else "leave", response, (200,), before)
        if done and not active:
            self.tokens.pop(self.people[name], None)

    def _group_membership(self, name: str, group: str, member: bool) -> None:
        value = {"value": str(self.people[name])}
        operation = (
            {"op": "add", "path": "members", "value": [value]}
            if member
            else {"op": "remove", "path": f'members[value eq "{value["value"]}"]'}
        )
        before = fingerprint.take()
        response = self.scim(
            "patch",
            f"Groups/{self.groups[group]}",
            {"schemas": [PATCH_SCHEMA], "Operations": [operation]},
        )
        self.answered("group membership", response, (200, 204), before)

    @rule(
        actor=actors,
        group=st.sampled_from(GROUPS),
        role=st.sampled_from(ROLES),
        service=st.sampled_from((None, *SERVICES)),
        remove=st.booleans(),
    )
    def map_group(
        self, actor: str, group: str, role: str, service: str | None, remove: bool
    ) -> None:
        """An administrator maps an identity group to a role, or removes a mapping."""
        self.step("map_group")
        by = self.user(actor)
        if by is None:
            return
        identity_group = IdentityGroup.objects.get(pk=self.groups[group])
        existing = GroupRoleMapping.objects.filter(
            group=identity_group, role=role, service_id=self.services.get(service or "")
        ).first()
        if remove:
            if existing is not None and actor in ADMINISTRATORS:
                identity.remove_role_mapping(mapping=existing, actor=by)
            return
        if existing is not None:
            return
        mapped = self.attempt(
            "group mapping",
            lambda: identity.add_role_mapping(
                group=identity_group,
                role=role,
                service=Service.objects.filter(slug=service).first(),
                reason="Mapped by the model",
                actor=by,
            ),
        )
        if mapped is not None:
            require(
                not identity_group.members.filter(pk=by.pk).exists(),
                9,
                f"{actor} mapped {group}, a group they belong to, to {role}",
            )

    # --- Authority: grants, delegations, the catalogue, policies --------------------------------

    @rule(
        actor=actors,
        revoke=st.booleans(),
        name=st.sampled_from((*PEOPLE, BOT)),
        role=st.sampled_from(ROLES),
        scope=st.sampled_from(SCOPES),
        environment=st.sampled_from((None, "staging", "production")),
        expires_in=st.sampled_from((None, 3, 30)),
    )
    def roles(self, actor, revoke, name, role, scope, environment, expires_in) -> None:
        """Someone grants a role by hand (on a service, a team's services or everything, maybe
        for one environment, maybe until a time), or revokes one of a person's grants."""
        self.step("roles")
        by, user = self.user(actor), self.user(name)
        if user is None or by is None:
            return
        if revoke:
            self._revoke(by, user, role)
            return
        team = Team.objects.get(slug=scope[5:]) if scope.startswith("team:") else None
        expires_at = self.clock.now() + timedelta(hours=expires_in) if expires_in else None
        self.attempt(
            "grant",
            lambda: grant_role(
                user=user,
                role=role,
                service=Service.objects.filter(slug=scope).first(),
                team=team,
                environment=factories.environment(environment) if environment else None,
                expires_at=expires_at,
                reason="Granted by the model",
                actor=by,
            ),
        )

    def _revoke(self, by: User, user: User, role: str) -> None:
        """Revoke the person's first grant of `role`, or their first grant of all."""
        grants = RoleAssignment.objects.filter(user=user).order_by("pk")
        assignment = grants.filter(role=role).first() or grants.first()
        if assignment is None:
            return
        self.attempt(
            "revoke",
            lambda: revoke_role(assignment=assignment, reason="Revoked by the model", actor=by),
        )

    @rule(
        arranger=st.sampled_from(("delegator", "ada", "adam", "delegate")),
        delegator=people,
        delegate=people,
        service=st.sampled_from((None, *SERVICES)),
        starts_in=st.sampled_from((0, 3, 30)),
        lasts=st.sampled_from((12, 2, 72)),
        end=st.booleans(),
    )
    def delegation(self, arranger, delegator, delegate, service, starts_in, lasts, end) -> None:
        """A person lends their authority for an absence, or an administrator does it for them
        (or the delegate tries to arrange it for themselves); or a delegation ends early."""
        self.step("delegation")
        lender, borrower = self.user(delegator), self.user(delegate)
        actor = self.user({"delegator": delegator, "delegate": delegate}.get(arranger, arranger))
        if lender is None or borrower is None or actor is None:
            return
        if end:
            # The delegator ends their own; an administrator ends anyone's.
            lent = Delegation.objects.filter(delegator=lender, revoked_at__isnull=True)
            delegation = lent.order_by("pk").first()
            if delegation is not None and arranger in ("delegator", "ada", "adam"):
                revoke_delegation(delegation=delegation, actor=actor, reason="Back early")
            return
        starts = self.clock.now() + timedelta(hours=starts_in)
        self.attempt(
            "delegation",
            lambda: create_delegation(
                delegator=lender,
                delegate=borrower,
                service=Service.objects.filter(slug=service).first(),
                starts_at=starts,
                ends_at=starts + timedelta(hours=lasts),
                reason="Away (the model)",
                actor=actor,
            ),
        )

    @rule(
        actor=actors,
        change=st.sampled_from(("owners", "members", "team")),
        service=services,
        team=st.sampled_from(TEAMS),
        chosen=st.frozensets(people, max_size=3),
    )
    def edit_catalogue(self, actor, change, service, team, chosen) -> None:
        """An administrator edits the catalogue: a service's owners, a team's members, or which
        team owns a service."""
        self.step("edit_catalogue")
        pks = [self.people[name] for name in sorted(chosen) if name in self.people]
        if change == "members":
            entry = Team.objects.get(slug=team)
            data = {"name": entry.name, "slug": entry.slug, "members": pks}
            self._catalogue(actor, catalogue_forms.TeamForm(data, instance=entry), "teams")
            return
        entry = Service.objects.get(slug=service)
        data = _service_data(entry, owners=pks[:2])
        if change == "team":
            data = _service_data(entry, team=self.teams[team])
        self._catalogue(actor, catalogue_forms.ServiceForm(data, instance=entry), "services")

    def _catalogue(self, actor: str, form, section: str) -> None:
        if not form.is_valid():
            return
        user = self.user(actor)
        if user is None:
            return
        owners = _links(form.instance)
        saved = self.attempt(
            "catalogue edit",
            lambda: save_entry(form=form, actor=user, section=section),
        )
        if saved is None:
            return
        made = (
            self.record.made_owner_by if isinstance(saved, Service) else self.record.made_member_by
        )
        for pk in _links(saved) - owners:
            made[(saved.pk, pk)] = user.pk
        for pk in owners - _links(saved):
            made.pop((saved.pk, pk), None)

    @rule(actor=actors, variant=st.sampled_from(tuple(policy_sources())))
    def publish_policy(self, actor: str, variant: str) -> None:
        """An administrator changes the policy; one who approves releases needs a second."""
        self.step("publish_policy")
        user = self.user(actor)
        if user is None:
            return
        world = self.world
        result = self.attempt(
            "policy change",
            lambda: policy_changes.change_policy(
                policy_obj=Policy.objects.get(slug="default"),
                source=policy_sources()[variant],
                actor=user,
                comment=variant,
            ),
        )
        if result is None:
            return
        if world.needs_second_administrator(user.pk):
            require(
                isinstance(result, PolicyProposal),
                4,
                f"{actor}, who approves releases, published a policy alone",
            )
        if isinstance(result, PolicyProposal):
            other = self.user("adam" if actor == "ada" else "ada")
            self.attempt(
                "policy approval",
                lambda: policy_changes.approve_proposal(proposal=result, actor=other),
            )

    # --- Releases: pipelines and people -------------------------------------------------------

    @rule(
        requester=requesters,
        service=services,
        environment=environments,
        trigger=st.one_of(st.sampled_from(("alice", "bob")), st.sampled_from(tuple(TRIGGERS))),
        reuse_change=st.one_of(st.none(), release_indexes),
        change_type=st.sampled_from(("normal", "emergency")),
        tests=st.sampled_from(("passed", "failed", "none")),
        retry=st.booleans(),
    )
    def request_release(
        self, requester, service, environment, trigger, reuse_change, change_type, tests, retry
    ) -> None:
        """A pipeline (or a person, with their own token) asks for approval through the API."""
        self.step("request_release")
        number = len(self.releases) + 1
        if reuse_change is not None and self.releases:
            ref = self.release(reuse_change).change.ref
        else:
            ref = f"MODEL-{number:04d}"
        body = {
            "service": service,
            "environment": environment,
            "version": f"1.{number}.0",
            "artifact": {
                "image": f"registry.example.com/{service}",
                "digest": factories.digest(f"{service}-{number}-{self.clock.now()}"),
            },
            "change": {"ref": ref, "type": change_type, "title": "Model change"},
            "pipeline": {"provider": "github", "triggered_by": trigger},
            "evidence": _tests(tests),
        }
        if self.token(requester) is None:
            return
        key = {"HTTP_IDEMPOTENCY_KEY": f"model-{number}"}
        before = fingerprint.take()
        response = self.api(requester, "releases/", body, **key)
        if not self.answered("request", response, (201,), before):
            return
        release = response.json()["id"]
        self.releases.append(release)
        self.record.meant_trigger[release] = TRIGGERS[trigger]
        if retry:
            again = fingerprint.take()
            response = self.api(requester, "releases/", body, **key)
            require(
                response.status_code == 200 and response.json()["id"] == release,
                8,
                f"a retried request answered {response.status_code}, not release #{release}",
            )
            require(not fingerprint.changed(again), 8, "a retried request wrote something")

    @precondition(lambda self: self.releases)
    @rule(
        name=deciders,
        release=release_indexes,
        verdict=st.sampled_from(("approve", "reject")),
    )
    def decide_in_the_browser(self, name: str, release: int, verdict: str) -> None:
        """A person approves or rejects on the release page."""
        self.step("decide_in_the_browser")
        self._decide_in_the_browser(name, release, verdict)

    def _decide_in_the_browser(self, name: str, release: int, verdict: str) -> None:
        user, target = self.user(name), self.release(release)
        if user is None:
            return
        browser = self.browser(user)
        must = self._must_record(user, target)
        before = fingerprint.take()
        response = browser.post(
            f"/approvals/releases/{target.pk}/decide/",
            {"verdict": verdict, "rationale": "Reviewed in the browser (model)"},
            HTTP_HX_REQUEST="true",
        )
        recorded = self.answered("decision", response, (200,), before)
        require(recorded or not must, 8, f"{must}, but the release page refused it")

    @precondition(lambda self: self.releases)
    @rule(
        name=deciders,
        release=release_indexes,
        verdict=st.sampled_from(("approve", "reject")),
        digest=st.sampled_from(("reviewed", "unsent", "another")),
    )
    def decide_through_the_api(self, name: str, release: int, verdict: str, digest: str) -> None:
        """A person approves or rejects with their token, naming the digest they reviewed."""
        self.step("decide_through_the_api")
        self._decide_through_the_api(name, release, verdict, digest)

    def _decide_through_the_api(self, name: str, release: int, verdict: str, digest: str) -> None:
        user, target = self.user(name), self.release(release)
        if user is None or self.token(name) is None:
            return
        body = {"decision": verdict, "rationale": "Reviewed through the API (model)"}
        if digest != "unsent":
            body["digest"] = target.digest if digest == "reviewed" else factories.digest("x")
        must = self._must_record(user, target) if digest != "another" else None
        before = fingerprint.take()
        response = self.api(name, f"releases/{target.pk}/decisions/", body)
        recorded = self.answered("decision", response, (201,), before)
        require(recorded or not must, 8, f"{must}, but the API refused it: {response.content}")
        if recorded and response.json().get("on_behalf_of"):
            tally["decision as a delegate"] += 1

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        pick=st.integers(0, 5),
        in_the_browser=st.booleans(),
        verdict=st.sampled_from(("approve", "approve", "approve", "reject")),
    )
    def decide_what_waits(self, release: int, pick: int, in_the_browser: bool, verdict) -> None:
        """Someone the release page lists for the open stage (or their delegate) decides it."""
        self.step("decide_what_waits")
        pending = list(
            ApprovalRequest.objects.filter(status="pending", release__in=self.releases)
            .order_by("pk")
            .values_list("release_id", flat=True)
        )
        if not pending:
            return
        target = Release.objects.get(pk=pending[release % len(pending)])
        stage = target.approval.stages.filter(status="active").first()
        if stage is None:
            return
        listed = sorted(stage.eligible_approvers.values_list("username", flat=True))
        delegates = Delegation.objects.in_force(self.clock.now()).filter(
            delegator__username__in=listed
        )
        names = listed + sorted(d.delegate.username for d in delegates)
        if not names:
            return
        name = names[pick % len(names)]
        index = self.releases.index(target.pk)
        if in_the_browser:
            self._decide_in_the_browser(name, index, verdict)
        else:
            self._decide_through_the_api(name, index, verdict, "reviewed")

    def _must_record(self, user: User, release: Release) -> str | None:
        """Why `user`'s own decision on `release` must be recorded now, or None when the rules
        may refuse it (the plain case only: on their own authority, nothing in the way)."""
        world, now = self.world, self.clock.now()
        approval = ApprovalRequest.objects.get(pk=release.approval.pk)
        if approval.status != "pending" or approval.expires_at <= now:
            return None
        stages = list(approval.stages.prefetch_related("eligible_approvers", "decisions"))
        active = next((s for s in stages if s.status == "active"), None)
        meant = self.people.get(self.record.meant_trigger.get(release.pk) or "")
        if (
            active is None
            or active.step_up
            or user.pk in conflicted(release, release.change, meant)
            or not world.holds(user.pk, active.approvers, release, now)
            or not world.in_teams(user.pk, active, release.service_id)
            or user.pk not in {u.pk for u in active.eligible_approvers.all()}
        ):
            return None
        counted = {
            person
            for stage in stages
            if stage.pk == active.pk or approval.dual_control
            for decision in stage.decisions.all()
            for person in (decision.approver_id, decision.on_behalf_of_id)
        }
        if user.pk in counted:
            return None
        return f"{user.username} may decide {active.name} of release #{release.pk}"

    @precondition(lambda self: self.releases)
    @rule(
        what=st.sampled_from(("approval", "request", "ask_again")),
        name=st.one_of(requesters, deciders),
        release=release_indexes,
    )
    def take_back(self, what: str, name: str, release: int) -> None:
        """An approver takes back their approval while its stage is open; the requester (or a
        release manager) withdraws a pending request, or asks again for a closed one."""
        self.step("take_back")
        target = self.release(release)
        if self.token(name) is None:
            return
        before = fingerprint.take()
        if what == "approval":
            path, body, ok = "decisions/revoke/", {"reason": "Second thoughts"}, 200
        elif what == "request":
            path, body, ok = "withdraw/", {"reason": "Not now"}, 200
        else:
            path, body, ok = "request-again/", {}, 201
        response = self.api(name, f"releases/{target.pk}/{path}", body)
        if self.answered(what, response, (ok,), before) and what == "ask_again":
            again = response.json()["id"]
            self.releases.append(again)
            self.record.meant_trigger[again] = self.record.meant_trigger.get(target.pk)

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        tests=st.sampled_from(("passed", "failed")),
        change_state=st.sampled_from((None, "cancelled", "authorise")),
    )
    def evidence_or_change(self, release: int, tests: str, change_state: str | None) -> None:
        """The pipeline reports new test results, or the change record moves on."""
        self.step("evidence_or_change")
        target = self.release(release)
        if change_state is None:
            self.token(BOT)
            before = fingerprint.take()
            response = self.api(BOT, f"releases/{target.pk}/evidence/", _tests(tests)[0])
            self.answered("evidence", response, (201,), before)
            return
        change = ChangeRecord.objects.get(pk=target.change_id)
        set_change_state(change=change, state=change_state, actor=self.user("dave"), reason="ITSM")

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        digest=st.sampled_from(("approved", "another")),
        status=st.sampled_from(("succeeded", "failed")),
    )
    def deploy(self, release: int, digest: str, status: str) -> None:
        """The pipeline asks the gate, deploys whatever it answered, and reports it."""
        self.step("deploy")
        target = self.release(release)
        deployed = target.digest if digest == "approved" else factories.digest("rogue")
        if self.token(BOT) is None:
            return
        gate = self.api(BOT, f"releases/{target.pk}/gate?digest={deployed}")
        if gate.status_code == 404:
            return  # The pipeline lost its role on this service: it sees nothing, reports nothing.
        answer = gate.json()["status"]
        response = self.api(
            BOT, f"releases/{target.pk}/deployments/", {"status": status, "digest": deployed}
        )
        require(response.status_code == 201, 10, f"a deployment report answered {response}")
        recorded = Deployment.objects.filter(release=target).latest("pk")
        require(
            recorded.gate_status == answer and recorded.approved == (answer == "approved"),
            10,
            f"the gate answered {answer}; the deployment was recorded as {recorded.gate_status}"
            f" (approved={recorded.approved})",
        )
        tally["deployment approved" if recorded.approved else "deployment unapproved"] += 1

    # --- Time ---------------------------------------------------------------------------------

    @rule(hours=st.sampled_from((1, 5, 26, 80, 170)))
    def time_passes(self, hours: int) -> None:
        """Hours go by: windows open and close, grants and requests reach their expiry."""
        self.step("time_passes")
        self.clock.at += timedelta(hours=hours)

    @rule()
    def periodic_tasks(self) -> None:
        """Celery beat runs: undecided requests and stale approvals expire, grants past their
        expiry are revoked, open stages' approvers are re-resolved."""
        self.step("periodic_tasks")
        expire_requests()
        expire_grants()
        reresolve_open_stages()

    # --- Freezes and incidents ----------------------------------------------------------------
    # They do not exist yet. Whoever builds them adds their rules here (a freeze starting and
    # ending, an override by a second person, an incident opened and resolved) and their
    # invariants to checks.py (the gate blocks inside a freeze or with an open blocking incident;
    # an override names two people; oracle.expected_gate learns the new preconditions).


def _service_data(service: Service, **changes) -> dict:
    data = {
        "name": service.name,
        "slug": service.slug,
        "description": service.description,
        "tier": service.tier,
        "team": service.team_id,
        "co_owning_teams": [t.pk for t in service.co_owning_teams.all()],
        "owners": [u.pk for u in service.owners.all()],
        "vendor": "",
        "compliance_tags": service.compliance_tags,
    }
    data.update(changes)
    return data


def _links(entry) -> set[int]:
    """A service's owners or a team's members, as ids."""
    people = entry.owners if isinstance(entry, Service) else entry.members
    return set(people.values_list("pk", flat=True))


def _tests(status: str) -> list[dict]:
    if status == "none":
        return []
    failed = 0 if status == "passed" else 2
    return [{"kind": "tests", "status": status, "summary": {"passed": 10, "failed": failed}}]


def organisation() -> Organisation:
    """The model, fresh for each example. Hypothesis keys its saved examples on this function's
    source, which stays the same when the model grows: saved failures keep replaying."""
    return Organisation()
