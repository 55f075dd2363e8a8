"""Fixtures of /metrics: the scrape token, a scraper that reads the exposition as Prometheus
does, and a Redis cache of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-0f6c2b9e8d7a4c1b9e3f5a7d2c8b6e4f"
# The key of one sample: its name and its labels.
Sample = tuple[str, frozenset]


def samples(text: str) -> dict[Sample, float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    return (name, frozenset(labels.items()))


@pytest.fixture
def metrics_token(settings) -> str:
    settings.SIGNOFF_METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def scrape(metrics_token) -> Callable[[], dict[Sample, float]]:
    """`scrape()`: GET /metrics with the token, as Prometheus would, parsed into samples."""

    def get() -> dict[Sample, float]:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
        assert response.status_code == 200, response.content
        return samples(response.content.decode())

    return get


@pytest.fixture
def redis_cache(settings) -> Iterator[None]:
    """The cache on a real Redis (REDIS_URL, else the development machines' local one), under
    keys of this test's own, removed afterwards (counters never expire)."""
    location = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield
    with redis.Redis.from_url(location) as server:
        for key in server.scan_iter(match=f"{prefix}:*"):
            server.delete(key)


@pytest.fixture
def redis_down(settings) -> None:
    """The cache on a Redis that is not there (a closed local port)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
