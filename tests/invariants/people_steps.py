"""The model's steps about people and their authority: the identity provider (SCIM) provisioning
and switching people off, group mappings, grants, delegations, catalogue edits and policies."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import rule

from approvals.models import ApprovalStage
from governance.authority.services import (
    create_delegation,
    grant_role,
    revoke_delegation,
    revoke_role,
)
from governance.catalogue import forms as catalogue_forms
from governance.catalogue.services import save_entry
from governance.identity import services as identity
from governance.models import (
    Delegation,
    GroupRoleMapping,
    IdentityGroup,
    Policy,
    PolicyProposal,
    RoleAssignment,
    Service,
    Team,
    User,
)
from governance.policy import services as policy_changes
from tests import factories
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import (
    PATCH_SCHEMA,
    ROLES,
    SCOPES,
    USER_SCHEMA,
    actors,
    people,
    services,
)
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


class PeopleSteps:
    """People join, leave and come back, and hold and lose authority (mixed into the model)."""

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
        change=st.sampled_from(("owners", "members", "team", "dependencies")),
        service=services,
        team=st.sampled_from(TEAMS),
        chosen=st.frozensets(people, max_size=3),
    )
    def edit_catalogue(self, actor, change, service, team, chosen) -> None:
        """An administrator edits the catalogue: a service's owners, a team's members, which
        team owns a service, or which services it depends on (the other one, or none)."""
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
        if change == "dependencies":
            others = [pk for slug, pk in self.services.items() if slug != service]
            depends = [] if entry.depends_on.exists() else others
            data = _service_data(entry, depends_on=depends)
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

    @rule(
        actor=actors,
        # Mostly the people the starting organisation's teams hold.
        name=st.one_of(st.sampled_from(("alice", "bob", "dave", "frank")), people),
        team=st.sampled_from(TEAMS),
        join=st.booleans(),
        pick=st.one_of(st.none(), st.integers(0, 5)),
    )
    def team_membership(self, actor: str, name: str, team: str, join: bool, pick) -> None:
        """One person leaves a team, or joins one, while releases wait: under a policy's team
        rule, a stage's frozen list of approvers may name someone no longer in the team (with
        `pick`, someone listed on an open stage leaves the owning team that listed them)."""
        self.step("team_membership")
        listed = _listed_by_team(self.releases) if pick is not None and not join else []
        if listed:
            name, team = listed[pick % len(listed)]
        entry = Team.objects.get(slug=team)
        members = set(entry.members.values_list("pk", flat=True))
        person = self.people.get(name)
        if person is None or (person in members) == join:
            return
        members = members | {person} if join else members - {person}
        data = {"name": entry.name, "slug": entry.slug, "members": sorted(members)}
        self._catalogue(actor, catalogue_forms.TeamForm(data, instance=entry), "teams")

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


def _listed_by_team(releases: list[int]) -> list[tuple[str, str]]:
    """(person, team) for each person listed on an open stage with a team rule and each owning
    team of the service they belong to."""
    stages = ApprovalStage.objects.filter(status="active", request__release__in=releases).exclude(
        team_rule=""
    )
    listed = []
    for stage in stages.select_related("request__release__service").order_by("pk"):
        owning = {t.pk: t.slug for t in stage.request.release.service.owning_teams()}
        for person in stage.eligible_approvers.order_by("pk"):
            for team in person.teams.filter(pk__in=owning).order_by("pk"):
                listed.append((person.username, team.slug))
    return listed


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
        "depends_on": [s.pk for s in service.depends_on.all()],
    }
    data.update(changes)
    return data


def _links(entry) -> set[int]:
    """A service's owners or a team's members, as ids."""
    people = entry.owners if isinstance(entry, Service) else entry.members
    return set(people.values_list("pk", flat=True))
