"""PostgreSQL connections come from one bounded pool per process, however many threads ask."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection, connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_postgres_connections_come_from_a_pool_with_the_configured_bounds():
    database = settings.DATABASES["default"]
    pool_settings = database["OPTIONS"]["pool"]
    assert database["CONN_MAX_AGE"] == 0  # the pool keeps connections, not each thread
    connection.ensure_connection()
    assert connection.pool is not None
    assert connection.pool.max_size == pool_settings["max_size"]
    assert connection.pool.min_size == pool_settings["min_size"]
    assert connection.pool.timeout == pool_settings["timeout"]


def test_many_concurrent_threads_never_open_more_connections_than_the_pool_allows():
    """Like 30 simultaneous requests on the threaded dev server: they take turns, none fails."""
    max_size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    start = threading.Barrier(3 * max_size)

    def request() -> int:
        start.wait(timeout=30)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend'"
                )
                seen = cursor.fetchone()[0]
                cursor.execute("SELECT pg_sleep(0.1)")
            return seen
        finally:
            connections.close_all()  # what Django does at the end of every request

    with ThreadPoolExecutor(max_workers=3 * max_size) as executor:
        seen = list(executor.map(lambda _: request(), range(3 * max_size)))

    assert len(seen) == 3 * max_size  # every "request" got a connection, in turn
    assert max(seen) <= max_size, seen
