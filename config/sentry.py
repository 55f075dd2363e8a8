"""Optional error reporting to Sentry (or a service speaking its protocol), when settings find a
SENTRY_DSN: unhandled exceptions in web requests and tasks, and ERROR log lines, each tagged with
its correlation id so that the event and the JSON log lines of the same request meet."""

from __future__ import annotations

from typing import Any

import sentry_sdk
from django.core.exceptions import ImproperlyConfigured
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from config.logs import redact_all
from governance.middleware import correlation_id


def init(
    *, dsn: str, environment: str | None, release: str | None, traces_sample_rate: float | None
) -> None:
    """Start the SDK. Personal data is never sent, and every string of an event goes through
    the same redaction as the log lines."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        # sentry-sdk 3's form of send_default_pii=False: no user identity (id, e-mail, IP
        # address), no cookies, no request or response bodies. Headers, query parameters and
        # frame variables keep the SDK's own denylist, and before_send redacts the rest.
        data_collection={"user_info": False, "cookies": {"mode": "off"}, "http_bodies": []},
        traces_sample_rate=traces_sample_rate,
        before_send=before_send,
        before_send_span=_scrub_span,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )


def sample_rate(raw: str) -> float | None:
    """SENTRY_TRACES_SAMPLE_RATE: unset means no tracing at all (not even sampled out)."""
    if not raw.strip():
        return None
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ImproperlyConfigured(f"SENTRY_TRACES_SAMPLE_RATE must be 0 to 1, got {raw!r}")
    return rate


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Tag the event with the correlation id and redact every string it carries (messages,
    exception values, local variables, breadcrumbs, the request's URL and headers)."""
    found = correlation_id.get()
    if found:
        event.setdefault("tags", {})["correlation_id"] = found
    # Events reach before_send already serialised: dicts, lists and scalars only.
    return redact_all(event)


def _scrub_span(span: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return redact_all(span)
