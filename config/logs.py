"""Logging: the LOGGING dictionary settings use (and gunicorn's), and the hooks that carry the
correlation id into every line: the request's on the web, the enqueuing request's in a task.

Lines are JSON by default when DEBUG is off (LOG_FORMAT=json|text overrides), one object a line:
time (ISO 8601, UTC), level, logger, message, correlation_id (null outside a request or task),
process_kind (web, worker, beat or command), exception (a string), and task_name/task_id in a
task. Secrets are redacted from every line before it is written (`redact`).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from logging.config import dictConfig
from pathlib import Path
from typing import Any

from celery import signals
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from config.env import env_bool, env_str
from governance.middleware import correlation_id

LOG_FORMATS = ("json", "text")
# The Celery message header carrying the enqueuing request's id to the worker (Celery's own
# `correlation_id` is the task id).
CORRELATION_HEADER = "signoff_correlation_id"

# (task name, task id) of the task this worker thread is running.
current_task: ContextVar[tuple[str, str] | None] = ContextVar("current_task", default=None)


def _process_kind(argv: list[str]) -> str:
    program = Path(argv[0]).name if argv else ""
    if program == "gunicorn" or "runserver" in argv:
        return "web"
    if program == "celery":
        return "beat" if "beat" in argv else "worker"
    return "command"


PROCESS_KIND = _process_kind(sys.argv)


def chosen_format() -> str:
    """LOG_FORMAT, or else JSON in production and text in development (DEBUG on)."""
    value = env_str("LOG_FORMAT", "text" if env_bool("DEBUG", False) else "json").strip().lower()
    if value not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {value!r}")
    return value


def logging_config(level: str) -> dict[str, Any]:
    """The LOGGING setting: one handler on stderr (stdout stays for commands' answers, such as
    `manage.py issue_token`), for Django, Celery and gunicorn alike.

    Python's warnings are turned into log lines too (logger py.warnings): written as they are,
    they would be the one line of a process that is not JSON.
    """
    logging.captureWarnings(True)
    log_format = chosen_format()
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": log_format,
        # In this order: the gunicorn access line's id is read from its arguments, which
        # redaction then folds into the message.
        "filters": ["context", "redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "config.logs.ContextFilter"},
            "redact": {"()": "config.logs.RedactSecretsFilter"},
        },
        "formatters": {log_format: {"()": f"config.logs.{log_format.capitalize()}Formatter"}},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Named so that gunicorn's own handlers are replaced in its workers too, where
            # Django applies this after gunicorn did. Access lines whatever LOG_LEVEL says:
            # gunicorn's `accesslog` turns them on and off.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its master process logs the same lines as Django."""
    return logging_config(env_str("LOG_LEVEL", "INFO"))


class ContextFilter(logging.Filter):
    """Adds the correlation id (and the running task) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = correlation_id.get() or _access_log_id(record)
        if found:
            record.correlation_id = found
        task = current_task.get()
        if task:
            record.task_name, record.task_id = task
        return True


def _access_log_id(record: logging.LogRecord) -> str | None:
    # gunicorn writes its access line after Django has finished with the request: the id is
    # the X-Request-ID the middleware put on the response, one of the line's arguments.
    if record.name != "gunicorn.access" or not isinstance(record.args, Mapping):
        return None
    value = record.args.get("{x-request-id}o")
    return value if value and value != "-" else None


class RedactSecretsFilter(logging.Filter):
    """Redacts secrets from the message, its arguments and the exception text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: left for the handler to report, as usual
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info:
            # Formatted once here, redacted, and kept as text: formatters print exc_text.
            record.exc_text = redact(_PLAIN.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_PLAIN = logging.Formatter()

REDACTED = "[redacted]"
# Shapes of secrets, each with what replaces it.
_SECRET_SHAPES = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    # Authorization header values, wherever they are quoted.
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]{6,}", re.I), rf"\1 {REDACTED}"),
    # Signoff's API and SCIM tokens (governance/identity/models.py), even without a label.
    (re.compile(r"\b(?:so|scim)_[\w-]{20,}"), REDACTED),
    # Credentials in URLs and DSNs: scheme://user:password@host.
    (re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]+@", re.I), rf"\1{REDACTED}@"),
)
# `name=value`, `name: value`, `"name": "value"`: passwords, secrets, tokens, keys, step-up
# (TOTP) codes, cookies. Over-redacting a harmless `tokens: 3` is the accepted price.
_SECRET_FIELD = re.compile(
    r"(?P<name>[\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|signing[_-]?key|authorization|cookie|sessionid|step_up_code|otp)[\w-]*)"
    r"(?P<separator>[\"']?\s*[:=]\s*)"
    # An Authorization value's scheme goes with its credentials.
    r"(?P<value>\[redacted\]|\"[^\"]*\"|'[^']*'"
    r"|(?:(?:Bearer|Basic|Token|Digest)\s+)?[^\s&,;\"'}\])]+)",
    re.I,
)
# Settings holding secrets: their values are redacted wherever they appear.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "LEDGER_SIGNING_KEY",
    "EMAIL_HOST_PASSWORD",
    "OIDC_RP_CLIENT_SECRET",
    "SIGNOFF_EVENT_WEBHOOK_SECRET",
    "SIGNOFF_METRICS_TOKEN",
    "SIGNOFF_GITHUB_APP_PRIVATE_KEY",
    "SENTRY_DSN",
)
# Shorter values would redact ordinary words; real secrets are far longer.
_SHORTEST_SECRET = 8


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by "[redacted]"."""
    # Labelled values first: the label says where the secret ends better than its shape does.
    text = _SECRET_FIELD.sub(_redact_field, text)
    for shape, replacement in _SECRET_SHAPES:
        text = shape.sub(replacement, text)
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    return text


def redact_all(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, scalars) with `redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_all(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item) for item in value]
    return value


def _redact_field(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{match['separator']}{quote}{REDACTED}{quote}"


def _secret_values() -> list[str]:
    # Read when a line is written, never at import: the logging configuration exists before
    # Django's settings do (gunicorn's master process never loads them).
    if not settings.configured:
        return []
    values = (getattr(settings, name, None) for name in SECRET_SETTINGS)
    return [value for value in values if isinstance(value, str) and len(value) >= _SHORTEST_SECRET]


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message", "correlation_id"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            static_fields={"process_kind": PROCESS_KIND},
            # Django passes the request object along, Celery a dict repeating the message and
            # the traceback: neither says anything the line lacks.
            reserved_attrs=[*RESERVED_ATTRS, "request", "server_time", "data"],
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Extra fields a library attached to the record: the filter saw only the message.
        return redact_all(log_data)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal (`make run`)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
            defaults={"correlation_id": "-"},
        )


def connect_celery(app: Any) -> None:
    """Hook the Celery app's signals (the worker's side of the correlation id)."""
    signals.setup_logging.connect(_configure_logging, weak=False)
    signals.before_task_publish.connect(_stamp_correlation_id, weak=False)
    signals.task_prerun.connect(_enter_task, weak=False)
    signals.task_postrun.connect(_leave_task, weak=False)


def _configure_logging(**kwargs: Any) -> None:
    # A receiver here stops Celery from installing its own handlers and formats (and from
    # redirecting stdout into the log): workers and beat log exactly as the web does.
    dictConfig(settings.LOGGING)


def _stamp_correlation_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    # Runs in the process that enqueues, inside its request or task: a task started by beat,
    # or from a shell, carries none and gets a fresh id when it runs.
    current = correlation_id.get()
    if current and headers is not None:
        headers.setdefault(CORRELATION_HEADER, current)


# Context tokens of running tasks, by task id: restored when the task ends, so that a task
# run eagerly inside a request hands the request its own id back.
_TOKENS: dict[str, tuple[Any, Any]] = {}


def _enter_task(task_id: str, task: Any, **kwargs: Any) -> None:
    carried = getattr(task.request, CORRELATION_HEADER, None)
    new_id = carried or correlation_id.get() or uuid.uuid4().hex
    _TOKENS[task_id] = (correlation_id.set(new_id), current_task.set((task.name, task_id)))


def _leave_task(task_id: str, **kwargs: Any) -> None:
    tokens = _TOKENS.pop(task_id, None)
    if tokens:
        correlation_id.reset(tokens[0])
        current_task.reset(tokens[1])
