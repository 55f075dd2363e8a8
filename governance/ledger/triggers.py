"""Letting named database triggers through, for tests and bulk seeding only.

pgtrigger's own `pgtrigger.ignore` prepends `SELECT set_config(...);` to every statement, two
commands in one, which PostgreSQL refuses once parameters are bound on the server (as Signoff
binds them with its connection pool). This sets the same `pgtrigger.ignore` variable with a
statement of its own instead. The application never calls it: the ledger's protections hold
for everything Signoff does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection
from pgtrigger import registry


@contextlib.contextmanager
def ignoring(*uris: str) -> Iterator[None]:
    """Within the block, the triggers named by `uris` ("app.Model:trigger") do not fire on
    this connection (PostgreSQL only; elsewhere there are no triggers to pass)."""
    if connection.vendor != "postgresql":
        yield
        return
    ids: set[str] = set()
    for model, trigger in registry.registered(*uris):
        pgid = trigger.get_pgid(model)
        ids |= {pgid, f"{model._meta.db_table}:{pgid}"}  # both forms, as pgtrigger sets them
    _set("{" + ",".join(sorted(ids)) + "}")
    try:
        yield
    finally:
        _set(None)


def _set(value: str | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, false)", [value])
