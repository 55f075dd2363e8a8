"""Counters of acts that leave no row behind, kept in the cache (Redis when REDIS_URL is set).

The gate answers pipelines far more often than anything changes, and an answer writes nothing:
counting answers in the database would add a write to the busiest read path. The cache counts
them instead, one Redis command each, and /metrics reads every counter with one MGET.

A count is lost, never an answer: with the cache unreachable the increment is skipped (and
logged), and a Redis restart starts the counters again from zero, which Prometheus reads as a
counter reset. Without Redis (the quick start) each process counts in its own memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

# Answers to "may this release go now?", by where the pipeline asked and the status answered.
GATE_ANSWERS = "gate-answers"
GATE_ANSWER_VIAS = ("api", "azure")
# AdmissionReviews of the Kubernetes webhook, by whether the pod was let in.
ADMISSION_REVIEWS = "admission-reviews"
ADMISSION_VERDICTS = ("allowed", "denied")

Series = tuple[str, ...]  # the counter's name, then its label values


def increment(counter: str, *labels: str) -> None:
    """Add one to a counter (created at zero when missing). Never raises: see the module."""
    key = _key((counter, *labels))
    try:
        _increment(key)
    except Exception:
        logger.warning("Could not count %s (cache unreachable)", key, exc_info=True)


def read(series: Iterable[Series]) -> dict[Series, int]:
    """The value of each series, 0 for one never counted, in one cache round trip.

    Raises when the cache is unreachable: an unknown count is not a zero count."""
    keys = {_key(one): one for one in series}
    found = caches["default"].get_many(list(keys))
    return {one: int(found.get(key, 0)) for key, one in keys.items()}


def _key(series: Series) -> str:
    return ":".join(("counter", *series))


def _increment(key: str) -> None:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # Redis' INCRBY creates a missing key at zero in the same command: one round trip,
        # where the cache API's incr() costs two (EXISTS, then INCRBY) and refuses a missing
        # key. The value stays a plain integer, which the cache's get_many() reads back as one.
        full = backend.make_and_validate_key(key)
        backend._cache.get_client(full, write=True).incr(full)
        return
    # Other backends (the quick start's memory): add() is atomic "set if absent".
    if not backend.add(key, 1, timeout=None):
        backend.incr(key)
