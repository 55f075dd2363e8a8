"""Builders for test data. Roles always go through the real grant service."""

from __future__ import annotations

import hashlib
import itertools

import factory

from approvals import services
from governance.models import Environment, Service, Team, User
from governance.services import grant_role, issue_token

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
    password = factory.PostGenerationMethodCall("set_password", "signoff-demo")


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
        slug=slug, defaults={"name": slug.capitalize(), "risk": risk,
                             "regulated": slug == "production"}
    )
    return env


def grant(user: User, role: str, service: Service | None = None) -> None:
    grant_role(user=user, role=role, service=service, reason="test fixture", actor=None)


def token_for(user: User) -> str:
    return issue_token(user=user, name="test")[1]


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
        "evidence": ({"kind": "tests", "status": "passed", "summary": {"passed": 10, "failed": 0}},),
    }
    values.update(overrides)
    return services.ReleaseInput(**values)
