"""Sampling PostgreSQL's activity in the background while a benchmark runs."""

from __future__ import annotations

import threading
from typing import Any, Self


class ActivitySampler:
    """Calls `sample(connection)` every `every` seconds on a connection of its own (autocommit),
    in a background thread, for as long as the `with` block runs. A database error ends the
    sampling and is kept in `error` rather than failing the benchmark."""

    every = 1.0
    name = "activity-sampler"

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sample(self, connection: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                while not self._stop.wait(self.every):
                    self.sample(connection)
                    self.samples += 1
        except psycopg.Error as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"
