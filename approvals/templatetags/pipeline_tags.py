"""The CI snippets the Integrations page shows are the files shipped in the repository, read
once per process, so the page and the tested files can never drift apart."""

from __future__ import annotations

import functools
from pathlib import Path

from django import template
from django.conf import settings

register = template.Library()
SHIPPED = ("docs/ci/", "tools/jenkins/")


@register.simple_tag
def shipped_file(path: str) -> str:
    """The text of a shipped snippet file (escaped by the template like any string)."""
    return _read(path)


@functools.cache
def _read(path: str) -> str:
    if not path.startswith(SHIPPED) or ".." in path:
        raise template.TemplateSyntaxError(f"{path} is not a shipped snippet file.")
    return (Path(settings.BASE_DIR) / path).read_text()
