"""The benchmark organisation: ~50 services in 10 teams, their approvers, a CAB and a pipeline bot.

Made through the real services (`grant_role`, `load_default_policy`) and idempotent, so it costs
a few hundred queries on a re-run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from django.core.management import call_command
from django.db import transaction

from governance.authority.services import grant_role
from governance.models import Environment, PolicyVersion, Role, Service, Team, User
from governance.policy.services import active_policy_version

TEAMS = 10
SERVICES_PER_TEAM = 5
APPROVERS_PER_TEAM = 4
DEVELOPERS_PER_TEAM = 3
CAB_MEMBERS = 5
# The security and privacy approvers the built-in policy's PCI and HIPAA stages draw from.
SECURITY_APPROVERS = 3
QUEUE_TEAMS = 2  # the queue persona approves for the services of the first two teams
TIERS = (1, 2, 3, 3, 4)
ENVIRONMENTS = (
    ("dev", "Development", Environment.Risk.LOW, False, 1),
    ("staging", "Staging", Environment.Risk.MEDIUM, False, 2),
    ("production", "Production", Environment.Risk.HIGH, True, 3),
)
BOT = "bench-ci"
QUEUE_USER = "bench-queue-approver"
REASON = "Benchmark organisation"


@dataclass
class ServiceInfo:
    """What the release seeder needs to know about one service, as plain data."""

    id: int
    slug: str
    team: str
    tier: int
    tags: list[str]
    approvers: list[int]
    owners: list[int]
    developers: list[tuple[int, str]]


@dataclass
class Org:
    services: list[ServiceInfo]
    environments: dict[str, tuple[int, str]]  # slug → (id, risk)
    cab: list[int]
    bot: User
    queue_user: User
    policy_version: PolicyVersion
    security: list[int] = field(default_factory=list)


def seed_org() -> Org:
    """Create (or find) the organisation and return it as plain data."""
    call_command("load_default_policy", verbosity=0, stdout=io.StringIO())
    with transaction.atomic():
        environments = _environments()
        bot = _user(BOT, service_account=True)
        grant_role(user=bot, role=Role.RELEASE_MANAGER, service=None, reason=REASON, actor=None)
        cab = [_user(f"bench-cab-{n}") for n in range(1, CAB_MEMBERS + 1)]
        for member in cab:
            grant_role(user=member, role=Role.CAB_MEMBER, service=None, reason=REASON, actor=None)
        security = [_user(f"bench-security-{n}") for n in range(1, SECURITY_APPROVERS + 1)]
        for member in security:
            grant_role(
                user=member, role=Role.SECURITY_APPROVER, service=None, reason=REASON, actor=None
            )
        queue_user = _user(QUEUE_USER)
        services = [_team(t, queue_user if t < QUEUE_TEAMS else None) for t in range(TEAMS)]
    version = active_policy_version()
    if version is None:
        raise SystemExit("No active policy after load_default_policy.")
    return Org(
        services=[s for team in services for s in team],
        environments=environments,
        cab=[u.pk for u in cab],
        security=[u.pk for u in security],
        bot=bot,
        queue_user=queue_user,
        policy_version=version,
    )


def _environments() -> dict[str, tuple[int, str]]:
    found = {}
    for slug, name, risk, regulated, order in ENVIRONMENTS:
        env, _ = Environment.objects.get_or_create(
            slug=slug, defaults={"name": name, "risk": risk, "regulated": regulated, "order": order}
        )
        found[slug] = (env.pk, env.risk)
    return found


def _user(username: str, *, service_account: bool = False) -> User:
    user, created = User.objects.get_or_create(
        username=username,
        defaults={
            "email": f"{username}@example.com",
            "is_service_account": service_account,
            "first_name": username.removeprefix("bench-").replace("-", " ").title(),
        },
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _team(index: int, extra_approver: User | None) -> list[ServiceInfo]:
    slug = f"bench-team-{index + 1:02d}"
    team, _ = Team.objects.get_or_create(
        slug=slug, defaults={"name": slug.replace("-", " ").title()}
    )
    approvers = [_user(f"{slug}-approver-{n}") for n in range(1, APPROVERS_PER_TEAM + 1)]
    developers = [_user(f"{slug}-dev-{n}") for n in range(1, DEVELOPERS_PER_TEAM + 1)]
    team.members.add(*approvers, *developers)
    everyone = approvers + ([extra_approver] if extra_approver else [])
    return [
        _service(index * SERVICES_PER_TEAM + n, team, everyone, developers)
        for n in range(SERVICES_PER_TEAM)
    ]


def _service(number: int, team: Team, approvers: list[User], developers: list[User]) -> ServiceInfo:
    tags = (["SOX"] if number % 4 == 0 else []) + (["PCI"] if number % 7 == 0 else [])
    service, created = Service.objects.get_or_create(
        slug=f"bench-svc-{number + 1:02d}",
        defaults={
            "name": f"bench-svc-{number + 1:02d}",
            "team": team,
            "tier": TIERS[number % len(TIERS)],
            "compliance_tags": tags,
        },
    )
    if created:
        service.owners.set(approvers[:1])
    for person in approvers:
        grant_role(user=person, role=Role.APPROVER, service=service, reason=REASON, actor=None)
    return ServiceInfo(
        id=service.pk,
        slug=service.slug,
        team=team.slug,
        tier=service.tier,
        tags=list(service.compliance_tags),
        approvers=[u.pk for u in approvers],
        owners=list(service.owners.values_list("pk", flat=True)),
        developers=[(u.pk, u.username) for u in developers],
    )
