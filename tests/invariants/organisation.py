"""The organisation every example of the model starts from, built once per test through the real
services, and the policies the model publishes.

Two administrators (ada, adam); approvers alice (payments-api) and bob (everything); carol on the
CAB; dave, a release manager; erin, an auditor; frank, who approves the platform team's services
in staging only; the pipeline's service account ci-bot. Two teams, two services (web is shared by
both teams and depends on payments-api), three environments, two identity groups already mapped
to roles, and the built-in default policy. gina and hank have not joined yet: the identity
provider provisions them. No freeze and no incident at first: the model creates them.
Two releases wait for approval from the start: payments-api to staging, asked for by the
pipeline on a run alice triggered, and web to production, asked for by dave himself.
"""

from __future__ import annotations

import io

from django.core.management import call_command

from approvals import services
from governance.identity import services as identity
from governance.management.commands.load_default_policy import DEFAULT_POLICY
from governance.models import IdentityGroup, Role, Service, Team
from tests import factories

ADMINISTRATORS = ("ada", "adam")
STAFF = ("alice", "bob", "carol", "dave", "erin", "frank")
JOINERS = ("gina", "hank")
PEOPLE = ADMINISTRATORS + STAFF + JOINERS
BOT = "ci-bot"
# A Cyrillic a (U+0430), then "lice": a look-alike of alice, never to be provisioned.
LOOK_ALIKE = "\u0430lice"
SERVICES = ("payments-api", "web")
TEAMS = ("payments", "platform")
ENVIRONMENTS = ("dev", "staging", "production")
GROUPS = ("payments-approvers", "cab-members")


def build_organisation() -> None:
    """Create the starting organisation (inside the test's transaction)."""
    call_command("load_default_policy", verbosity=0, stdout=io.StringIO())
    for slug in ENVIRONMENTS:
        factories.environment(slug)
    people = {name: factories.UserFactory(username=name) for name in ADMINISTRATORS + STAFF}
    bot = factories.UserFactory(username=BOT, is_service_account=True)
    payments = factories.TeamFactory(slug="payments", name="Payments")
    platform = factories.TeamFactory(slug="platform", name="Platform")
    payments.members.set([people["alice"], people["dave"]])
    platform.members.set([people["bob"], people["frank"]])
    api = factories.ServiceFactory(
        slug="payments-api", tier=1, team=payments, compliance_tags=["SOX"]
    )
    api.owners.set([people["alice"]])
    web = factories.ServiceFactory(slug="web", tier=3, team=platform)
    web.co_owning_teams.set([payments])
    web.owners.set([people["bob"]])
    web.depends_on.set([api])  # an incident on payments-api holds web's releases too
    for name in ADMINISTRATORS:
        factories.grant(people[name], Role.ADMINISTRATOR)
    factories.grant(people["alice"], Role.APPROVER, api)
    factories.grant(people["bob"], Role.APPROVER)
    factories.grant(people["carol"], Role.CAB_MEMBER)
    factories.grant(people["dave"], Role.RELEASE_MANAGER)
    factories.grant(people["erin"], Role.AUDITOR)
    factories.grant(bot, Role.RELEASE_MANAGER)
    factories.grant_scoped(
        people["frank"],
        Role.APPROVER,
        team=platform,
        environment=factories.environment("staging"),
    )
    _groups(people, api)
    # Waiting from the start, so that decisions (and conflicts of interest) come from step one.
    services.request_approval(
        data=factories.release_input(
            api, factories.environment("staging"), triggered_by="alice", version="0.9.0"
        ),
        actor=bot,
    )
    services.request_approval(
        data=factories.release_input(web, factories.environment("production"), version="0.9.1"),
        actor=people["dave"],
    )


def _groups(people: dict, api: Service) -> None:
    for name, role, service, by in (
        ("payments-approvers", Role.APPROVER, api, "ada"),
        ("cab-members", Role.CAB_MEMBER, None, "adam"),
    ):
        group = identity.provision_group(
            group=IdentityGroup(name=name), members=None, source="scim:okta"
        )
        identity.add_role_mapping(
            group=group, role=role, service=service, reason=f"{name} group", actor=people[by]
        )


def team(slug: str) -> Team:
    return Team.objects.get(slug=slug)


# --- Policies the administrators publish ---------------------------------------------------------

OWNERS_AND_TEAMS = """
rules:
  - id: dev-free
    when: environment.risk == "low"
    require: {stages: []}
  - id: staging-owner
    when: environment.risk == "medium"
    require:
      stages:
        - {key: owner, name: Owner approval, approvers: service_owners, count: 1, order: 5,
           teams: primary}
  - id: production-each-team
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 2,
           order: 10, teams: each}
        - {key: cab, name: CAB approval, approvers: cab, count: 1, order: 20}
      dual_control: true
      approval_valid_hours: 24
      evidence: [{kind: tests, status: passed, max_failed: 0}]
  - id: emergency
    when: change.type == "emergency"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1,
           order: 10}
      retro_review: true
"""

ONE_APPROVER_EVERYWHERE = """
rules:
  - id: one-approver
    when: "true"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1,
           order: 10}
      approval_valid_hours: 6
"""

# A condition that cannot be evaluated for most releases: the plan must fail closed.
FAILS_CLOSED = """
rules:
  - id: cab-always
    when: "true"
    require:
      stages:
        - {key: cab, name: CAB approval, approvers: cab, count: 1, order: 20}
  - id: security-scan
    when: evidence.security.failed > 0
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 3,
           order: 10}
"""


def policy_sources() -> dict[str, str]:
    return {
        "default": DEFAULT_POLICY.read_text(),
        "owners-and-teams": OWNERS_AND_TEAMS,
        "one-approver": ONE_APPROVER_EVERYWHERE,
        "fails-closed": FAILS_CLOSED,
    }
