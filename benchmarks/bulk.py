"""Bulk loading through PostgreSQL COPY, driven by the Django models so new fields keep working.

Rows are given by attribute name; any column left out gets the model field's default, so a
field added to a model later (with a default) does not break the seeder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection, models
from psycopg import sql


class TableWriter:
    """Buffers rows for one model's table, then COPYs them in and hands out primary keys."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.table = model._meta.db_table
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.known = set(self.attnames)
        self.json = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        self.defaults = {f.attname: _default(f) for f in self.fields}
        self.rows: list[tuple] = []
        self.next_id = _max_id(self.table) + 1

    def reserve(self) -> int:
        """A primary key for a row to be added later with `add(id=...)`."""
        pk = self.next_id
        self.next_id += 1
        return pk

    def add(self, **values: Any) -> int:
        """Queue one row (attribute name → value); returns its primary key."""
        if "id" not in values:
            values["id"] = self.reserve()
        unknown = values.keys() - self.known
        if unknown:
            raise ValueError(f"{self.table}: unknown columns {sorted(unknown)}")
        self.rows.append(tuple(self._value(name, values) for name in self.attnames))
        return values["id"]

    def _value(self, name: str, values: dict[str, Any]) -> Any:
        value = values[name] if name in values else self.defaults[name]
        if name in self.json and value is not None:
            return json.dumps(value)
        return value

    def flush(self) -> int:
        """COPY the buffered rows in (inside the caller's transaction); returns how many."""
        count = len(self.rows)
        if count:
            copy_rows(self.table, [f.column for f in self.fields], self.rows)
        self.rows = []
        return count


def _default(field: models.Field) -> Any:
    return None if field.primary_key else field.get_default()


def _text(statement: sql.Composable) -> str:
    """A composed statement as plain SQL text, as Django's cursor wrapper expects."""
    connection.ensure_connection()
    return statement.as_string(connection.connection)


def _max_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            _text(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(table)))
        )
        return cursor.fetchone()[0]


def copy_rows(table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """COPY `rows` into `table` with psycopg's COPY support."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.copy(_text(statement)) as copy:
        for row in rows:
            copy.write_row(row)


def reset_sequence(table: str) -> None:
    """setval() the table's id sequence to its largest id."""
    with connection.cursor() as cursor:
        statement = sql.SQL(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT coalesce(max(id), 1) FROM {}))"
        ).format(sql.Identifier(table))
        cursor.execute(_text(statement), [table])


def analyze(tables: Iterable[str]) -> None:
    """VACUUM ANALYZE freshly loaded tables, as autovacuum would eventually in production."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(_text(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table))))
