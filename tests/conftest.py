"""Shared fixtures: the default policy, a small organisation and its personas."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import TransactionTestCase

from approvals import services
from governance.ledger import triggers
from governance.models import Role
from tests import factories

# Playwright's sync API keeps an event loop in the main thread; Django's ORM must be allowed there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Playwright with Debian's Chromium (Playwright cannot download its own browser here), for every
# browser test wherever it lives.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers), the tests that start servers and
    workers of their own (tests/ops) run one after another on one worker: they time what a
    process does, and two at once would share the machine's cores with each other."""
    ops = Path(__file__).parent / "ops"
    for item in items:
        if ops in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("ops"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1360, "height": 900}}


@pytest.fixture
def client():
    """Django's test client, signing in through django-axes like the login form does."""
    return factories.SignInClient()


@pytest.fixture(autouse=True)
def _own_cache_keys(settings):
    """Each test starts with an empty cache (failed-token counters), without flushing a Redis
    database that the Celery broker or a parallel run may share: its keys get their own prefix."""
    settings.CACHES = {
        name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
        for name, config in settings.CACHES.items()
    }


# The ledger's tables refuse TRUNCATE (invariant 11), but transactional tests and live_server
# empty every table with TRUNCATE between tests. Only that flush is let through, by pgtrigger's
# ignore setting; a test of its own still meets the triggers.
LEDGER_TRUNCATE_TRIGGERS = (
    "governance.LedgerEntry:ledger_no_truncate",
    "governance.LedgerHead:ledger_head_no_truncate",
)


@pytest.fixture(scope="session", autouse=True)
def _flush_past_ledger_protection():
    flush = TransactionTestCase._fixture_teardown

    def fixture_teardown(self) -> None:
        with triggers.ignoring(*LEDGER_TRUNCATE_TRIGGERS):
            flush(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", fixture_teardown)
        yield


@pytest.fixture
def eager():
    """Celery runs tasks in the calling process as they are enqueued (no worker in tests).

    Set on the project's app itself: `celery.current_app` is per thread and may be another
    (default) app in a thread that never imported config.celery."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path) -> None:
    """Files the app writes (background reports) go to this test's folder, never to var/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def ledger_checkpoints(settings, tmp_path) -> Path:
    """Ledger checkpoints go to this test's own folder, never to var/ (a developer's real ones)."""
    folder = tmp_path / "ledger-checkpoints"
    settings.STORAGES = {
        **settings.STORAGES,
        settings.LEDGER_CHECKPOINT_STORAGE: {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder)},
        },
    }
    return folder


@pytest.fixture
def policy(db):
    call_command("load_default_policy", verbosity=0, stdout=io.StringIO())


@pytest.fixture
def production(db):
    return factories.environment("production")


@pytest.fixture
def staging(db):
    return factories.environment("staging")


@pytest.fixture
def dev(db):
    return factories.environment("dev")


@pytest.fixture
def team(db):
    return factories.TeamFactory(slug="payments", name="Payments")


@pytest.fixture
def service(team):
    """Tier-1, SOX-scoped: production needs two service approvers and then the CAB."""
    return factories.ServiceFactory(slug="payments-api", tier=1, team=team, compliance_tags=["SOX"])


@pytest.fixture
def low_tier_service(team):
    return factories.ServiceFactory(slug="web-frontend", tier=3, team=team)


@pytest.fixture
def requester(service, low_tier_service):
    user = factories.UserFactory(username="dave", first_name="Dave")
    factories.grant(user, Role.RELEASE_MANAGER, service)
    factories.grant(user, Role.RELEASE_MANAGER, low_tier_service)
    return user


@pytest.fixture
def approver(service, low_tier_service):
    user = factories.UserFactory(username="alice", first_name="Alice")
    factories.grant(user, Role.APPROVER, service)
    factories.grant(user, Role.APPROVER, low_tier_service)
    return user


@pytest.fixture
def second_approver(service, low_tier_service):
    user = factories.UserFactory(username="bob", first_name="Bob")
    factories.grant(user, Role.APPROVER, service)
    factories.grant(user, Role.APPROVER, low_tier_service)
    return user


@pytest.fixture
def cab_member(db):
    user = factories.UserFactory(username="carol", first_name="Carol")
    factories.grant(user, Role.CAB_MEMBER)
    return user


@pytest.fixture
def administrator(db):
    """Administers everything: roles, catalogue, delegations for others; decides nothing."""
    user = factories.UserFactory(username="ada", first_name="Ada")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


@pytest.fixture
def auditor(db):
    user = factories.UserFactory(username="erin", first_name="Erin")
    factories.grant(user, Role.AUDITOR)
    return user


@pytest.fixture
def outsider(db):
    """Signed in, but holds no role anywhere."""
    return factories.UserFactory(username="mallory")


@pytest.fixture
def pipeline_bot(db):
    user = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(user, Role.RELEASE_MANAGER)
    return user


@pytest.fixture
def org(
    policy,
    production,
    staging,
    dev,
    requester,
    approver,
    second_approver,
    cab_member,
    auditor,
    outsider,
    pipeline_bot,
):
    """Everything above, for tests that need the whole cast."""


@pytest.fixture
def production_release(org, service, production, requester, pipeline_bot):
    """dave's tier-1 release to production, requested through the pipeline bot."""
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    return release


# --- Pipeline API, PostgreSQL-only tests and extra personas --------------------------------------


@pytest.fixture(autouse=True)
def _postgres_only(request):
    """Skip tests marked `postgres` when the suite runs on another database (SQLite quick start).

    Triggers and row locks are PostgreSQL behaviour; elsewhere those tests would prove nothing.
    """
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL; running on {connection.vendor}")


@pytest.fixture
def api(client):
    """`api(user)` → a pipeline-API client with a fresh bearer token; `api()` is anonymous."""

    def make(user=None) -> factories.ApiClient:
        return factories.ApiClient(client, user)

    return make


@pytest.fixture
def other_service(team):
    return factories.ServiceFactory(slug="billing", tier=2, team=team)


@pytest.fixture
def other_service_approver(other_service):
    """Approves billing only: payments releases are out of scope for them."""
    user = factories.UserFactory(username="oscar", first_name="Oscar")
    factories.grant(user, Role.APPROVER, other_service)
    return user
