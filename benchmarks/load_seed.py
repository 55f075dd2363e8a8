"""The Django side of `make load`: seed the load organisation, and read back what was recorded.

Run by `benchmarks.load` in a subprocess with the same environment as the servers, so that the
seeding goes through the real services (`grant_role`, `issue_token`) against the load database:

    python -m benchmarks.load_seed seed     # JSON on stdout: API tokens, services, approvers
    python -m benchmarks.load_seed facts    # JSON on stdout: releases, decisions, stages and
                                            # the notifications' delivery lags

The load database is dropped and recreated on every run, so "everything in it" is the run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SERVICES = 10
APPROVERS_PER_SERVICE = 3
CAB_MEMBERS = 2
DEVELOPERS = 5
TEAM = "load-team"
PIPELINE = "load-ci"
REASON = "Load test organisation"
LETTERS = "abcdefghij"
# Tier 1 services need the CAB after two service approvers in production (see
# governance/policy/default.yaml); tier 3 services need the two service approvers only. Half
# of each, so the run exercises both a single stage and sequential stages.
TIERS = (1, 3)


def setup_django() -> None:
    """django.setup() with the settings module the servers use."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()


def seed() -> dict[str, Any]:
    """Environments, one team of services with approvers, a CAB, a pipeline; tokens for all."""
    from django.db import transaction

    from governance.authority.services import grant_role
    from governance.identity.tokens import issue_token
    from governance.models import Environment, Role, Service, Team

    with transaction.atomic():
        Environment.objects.get_or_create(
            slug="production",
            defaults={
                "name": "Production",
                "risk": Environment.Risk.HIGH,
                "regulated": True,
                "order": 3,
            },
        )
        team, _ = Team.objects.get_or_create(slug=TEAM, defaults={"name": "Load team"})
        pipeline = _user(PIPELINE, service_account=True)
        grant_role(
            user=pipeline, role=Role.RELEASE_MANAGER, service=None, reason=REASON, actor=None
        )
        cab = [_user(f"load-cab-{LETTERS[n]}") for n in range(CAB_MEMBERS)]
        for member in cab:
            grant_role(user=member, role=Role.CAB_MEMBER, service=None, reason=REASON, actor=None)
        # Developers trigger pipeline runs: named in `triggered_by`, they never approve.
        developers = [_user(f"load-dev-{LETTERS[n]}") for n in range(DEVELOPERS)]
        services = []
        for number in range(1, SERVICES + 1):
            slug = f"load-svc-{number:02d}"
            service = Service.objects.create(
                slug=slug, name=slug, team=team, tier=TIERS[number % len(TIERS)]
            )
            approvers = [
                _user(f"{slug}-approver-{LETTERS[n]}") for n in range(APPROVERS_PER_SERVICE)
            ]
            team.members.add(*approvers)
            for person in approvers:
                grant_role(
                    user=person, role=Role.APPROVER, service=service, reason=REASON, actor=None
                )
            services.append((service, approvers))

    def token(user) -> str:
        return issue_token(user=user, name="load-test")[1]

    return {
        "environment": "production",
        "pipeline": {"username": pipeline.username, "token": token(pipeline)},
        "developers": [person.username for person in developers],
        "cab": [{"username": u.username, "token": token(u)} for u in cab],
        "services": [
            {
                "slug": service.slug,
                "tier": service.tier,
                "approvers": [{"username": u.username, "token": token(u)} for u in approvers],
            }
            for service, approvers in services
        ],
    }


def _user(username: str, *, service_account: bool = False):
    from governance.models import User

    user = User(
        username=username,
        email=f"{username}@example.com",
        is_service_account=service_account,
        first_name=username.removeprefix("load-").replace("-", " ").title(),
    )
    # API tokens only: nobody signs in with a password during the load test.
    user.set_unusable_password()
    user.save()
    return user


def facts() -> dict[str, Any]:
    """What the database recorded: every release, decision and stage, as plain data."""
    from django.db.models import Count, Q

    from approvals.models import ApprovalStage, Decision, Release
    from governance.models import LedgerEntry, Notification

    releases = [
        {
            "id": r["pk"],
            "key": r["idempotency_key"],
            "service": r["service__slug"],
            "status": r["approval__status"],
            "deployments": r["deployment_count"],
        }
        for r in Release.objects.annotate(deployment_count=Count("deployments")).values(
            "pk", "idempotency_key", "service__slug", "approval__status", "deployment_count"
        )
    ]
    decisions = [
        {
            "release": d["request__release_id"],
            "approver": d["approver__username"],
            "verdict": d["verdict"],
            "stage": d["stage__key"],
        }
        for d in Decision.objects.values(
            "request__release_id", "approver__username", "verdict", "stage__key"
        )
    ]
    approve = Q(decisions__verdict=Decision.Verdict.APPROVE)
    stages = [
        {
            "release": s["request__release_id"],
            "key": s["key"],
            "status": s["status"],
            "required": s["required_count"],
            "approval_count": s["approval_count"],
            "distinct_approvers": s["distinct_approvers"],
        }
        for s in ApprovalStage.objects.annotate(
            distinct_approvers=Count("decisions__approver", filter=approve, distinct=True)
        ).values(
            "request__release_id",
            "key",
            "status",
            "required_count",
            "approval_count",
            "distinct_approvers",
        )
    ]
    # Seconds from queued (in the deciding transaction) to sent by a worker; None: never sent.
    notification_lags = [
        (delivered - created).total_seconds() if delivered else None
        for created, delivered in Notification.objects.values_list("created_at", "delivered_at")
    ]
    return {
        "releases": releases,
        "decisions": decisions,
        "stages": stages,
        "ledger_entries": LedgerEntry.objects.count(),
        "notification_lags": notification_lags,
    }


def main(argv: list[str]) -> int:
    commands = {"seed": seed, "facts": facts}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m benchmarks.load_seed {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    setup_django()
    json.dump(commands[argv[0]](), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
