"""Prepared statements for the few queries every pipeline call repeats.

PostgreSQL plans a query each time it runs it unless the statement is prepared; for the gate's
point lookups the plan is a good part of the cost. Preparing everything (psycopg's
`prepare_threshold`) is not an option: for the queue and the reports a generic plan can be far
worse than one made for the actual parameters (measured: the approver queue went from 112 to 485
ms). So statements run inside `prepared_statements()` are prepared on their first run on a
connection and reused after; everything else is planned per call, as Django does by default.

It needs parameters bound on the server (`server_side_binding`, on with the connection pool
unless DATABASE_PREPARED_STATEMENTS=false); elsewhere (SQLite, a transaction-mode pooler) the
block simply runs unprepared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection


@contextlib.contextmanager
def prepared_statements() -> Iterator[None]:
    connection.ensure_connection()
    raw = connection.connection
    options = connection.settings_dict.get("OPTIONS", {})
    if connection.vendor != "postgresql" or not options.get("server_side_binding"):
        yield
        return
    previous = raw.prepare_threshold
    raw.prepare_threshold = 0  # prepare at the first run; a statement already prepared is reused
    try:
        yield
    finally:
        raw.prepare_threshold = previous
