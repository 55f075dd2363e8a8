"""Loaded by `make mutate` (pyproject.toml, [tool.mutmut] pytest_add_cli_args).

mutmut runs pytest inside its own process, whose name does not say "pytest", so the settings
would not know that a test suite is running (config.settings.TESTING) and would, for one, hash
every fixture password at production cost. Imported before Django is set up, this says it.
"""

import sys

import pytest

sys.argv[0] = "pytest"

# Fixtures that empty the test database after the test instead of rolling it back.
FLUSHING_FIXTURES = {"transactional_db", "live_server", "django_db_serialized_rollback"}


def flushes_the_database(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    if marker and (marker.kwargs.get("transaction") or marker.kwargs.get("serialized_rollback")):
        return True
    return bool(FLUSHING_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests that flush the database (the concurrency tests, mostly).

    mutmut forks every mutant's run from one process and all of them share one test database.
    A flush there renumbers the content types (and drops what data migrations wrote) under the
    process's caches, so every later mutant's run failed whatever the mutant: counted as a
    kill. Seen on 2026-12-07: an IntegrityError on auditlog's content type, not the mutant.
    """
    flushing = [item for item in items if flushes_the_database(item)]
    if flushing:
        config.hook.pytest_deselected(items=flushing)
        items[:] = [item for item in items if not flushes_the_database(item)]


def pytest_runtest_setup(item: object) -> None:
    """Start every test with the policy documents' and the content types' caches empty.

    mutmut forks each mutant's run from its own process, which has already run the suite: the
    policy documents parsed there by the original code stay cached, and a mutant in the parsing
    would never run. Emptying the caches makes every test parse with the code under test.
    """
    from django.contrib.contenttypes.models import ContentType

    for cached in cached_policy_readers():
        cached.cache_clear()
    ContentType.objects.clear_cache()


def cached_policy_readers() -> list:
    """The policy readers that keep what they parsed (tests/invariants/test_mutation_plugin.py
    checks that none is missing)."""
    from governance.policy import engine, standard

    return [
        engine.parse,
        engine.emergency_settings,
        engine.sla_definitions,
        standard.standard_templates,
    ]
