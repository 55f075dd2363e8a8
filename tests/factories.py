"""Builders for test data. Roles always go through the real grant service."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Iterator

import factory
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest
from django.test import Client

from approvals import services
from approvals.models import (
    ApprovalRequest,
    ApprovalStage,
    Decision,
    Deployment,
    Evidence,
    Release,
)
from changes.models import ChangeRecord
from governance.authority.services import grant_role
from governance.models import (
    ApiToken,
    Delivery,
    Environment,
    LedgerEntry,
    PolicyVersion,
    Service,
    Team,
    User,
)

_counter = itertools.count(1)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("signoff-demo")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    name = factory.LazyAttribute(lambda s: s.slug)
    slug = factory.Sequence(lambda n: f"service-{n}")
    tier = 3
    team = factory.SubFactory(TeamFactory)
    compliance_tags = factory.LazyFunction(list)


def environment(slug: str) -> Environment:
    risk = {"dev": "low", "staging": "medium", "production": "high"}[slug]
    env, _ = Environment.objects.get_or_create(
        slug=slug,
        defaults={"name": slug.capitalize(), "risk": risk, "regulated": slug == "production"},
    )
    return env


def grant(user: User, role: str, service: Service | None = None) -> None:
    grant_role(user=user, role=role, service=service, reason="test fixture", actor=None)


def token_for(user: User) -> str:
    """A working bearer token for `user`, built like the other fixture rows: directly, so the
    ledger holds only what the test itself does (tests/governance/identity/test_tokens.py covers
    issuing through the ledgered service)."""
    key = ApiToken.generate_key()
    ApiToken.objects.create(
        user=user, name="test", key_hash=ApiToken.hash_key(key), key_prefix=key[:8]
    )
    return key


def digest(seed: str | None = None) -> str:
    seed = seed or f"artifact-{next(_counter)}"
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def release_input(service: Service, env: Environment, **overrides) -> services.ReleaseInput:
    values = {
        "service": service,
        "environment": env,
        "version": f"1.0.{next(_counter)}",
        "image": f"registry.example.com/{service.slug}",
        "digest": digest(),
        "change_ref": f"CHG{next(_counter):07d}",
        "change_type": "normal",
        "change_title": "Test change",
        "evidence": (
            {"kind": "tests", "status": "passed", "summary": {"passed": 10, "failed": 0}},
        ),
    }
    values.update(overrides)
    return services.ReleaseInput(**values)


class SignInClient(Client):
    """Django's test client. `login()` hands authenticate() a request, as django-axes requires
    (it counts failures per address); the address is the one the test client's requests carry."""

    def login(self, **credentials) -> bool:
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = "127.0.0.1"
        credentials.setdefault("request", request)
        return super().login(**credentials)


# --- Pipeline API and state snapshots ------------------------------------------------------------


class ApiClient:
    """Django's test client speaking the pipeline API as one person (or anonymously).

    Every call sends JSON and returns the response; the token is issued once per client.
    """

    def __init__(self, client, user: User | None = None) -> None:
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"} if user else {}

    def get(self, path: str, **extra):
        return self.client.get(path, **self.headers, **extra)

    def post(self, path: str, body: object, **extra):
        return self.client.post(
            path, json.dumps(body), content_type="application/json", **self.headers, **extra
        )

    def patch(self, path: str, body: object, **extra):
        return self.client.patch(
            path, json.dumps(body), content_type="application/json", **self.headers, **extra
        )


def release_body(**overrides) -> dict:
    """The example request body of the pipeline API: payments-api to production, tests green."""
    body = {
        "service": "payments-api",
        "environment": "production",
        "version": "2.14.0",
        "artifact": {"image": "registry.example.com/payments/payments-api", "digest": digest()},
        "change": {"ref": "CHG0012345", "type": "normal", "title": "Payments API 2.14.0"},
        "pipeline": {
            "provider": "github",
            "run_url": "https://github.com/acme/payments-api/actions/runs/9001",
            "triggered_by": "dave",
        },
        "evidence": [
            {"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}
        ],
    }
    body.update(overrides)
    return body


def state_counts() -> dict[str, int]:
    """Row counts of everything an approval write can touch, to prove a denial wrote nothing."""
    models = (
        Release,
        ChangeRecord,
        ApprovalRequest,
        ApprovalStage,
        Decision,
        Evidence,
        Deployment,
        LedgerEntry,
        PolicyVersion,
        Delivery,
    )
    return {model.__name__: model.objects.count() for model in models}


def table_state(*models: type[Model]) -> tuple[int, ...]:
    """Row counts of `models`, then the ledger's length and last sequence number, in one query:
    equal before and after a refusal when it wrote nothing."""
    counts = [f'(SELECT count(*) FROM "{model._meta.db_table}")' for model in models]
    ledger = LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(counts) + ', ' if counts else ''}"
            f'(SELECT count(*) FROM "{ledger}"), (SELECT coalesce(max(seq), 0) FROM "{ledger}")'
        )
        return tuple(cursor.fetchone())


def approval_snapshot(release: Release) -> dict:
    """The request's status and each stage's (key, status, approval_count), read fresh."""
    approval = ApprovalRequest.objects.get(release=release)
    stages = approval.stages.order_by("position").values_list("key", "status", "approval_count")
    return {"status": approval.status, "stages": list(stages)}


def decide(
    release: Release, user: User, verdict: str = "approve", rationale: str = "Looks good."
) -> Decision:
    """Record a decision through the real service, as the UI would."""
    return services.record_decision(
        release=release, actor=user, verdict=verdict, rationale=rationale
    )


@contextlib.contextmanager
def nothing_changes(release: Release | None = None) -> Iterator[None]:
    """Assert the block wrote no row anywhere and left the release's approval as it was."""
    counts = state_counts()
    snapshot = approval_snapshot(release) if release else None
    yield
    assert state_counts() == counts
    if release:
        assert approval_snapshot(release) == snapshot


def grant_scoped(user: User, role: str, **scope):
    """Grant through the real service with a team and/or environment scope."""
    return grant_role(
        user=user,
        role=role,
        reason="test fixture",
        actor=None,
        service=scope.get("service"),
        team=scope.get("team"),
        environment=scope.get("environment"),
    )
