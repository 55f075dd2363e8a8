"""What the release page shows about image promotion across clusters."""

from __future__ import annotations

from approvals.models import Release


def promotion_panel(release: Release) -> dict:
    """The clusters where the release's digest was admitted (filled in by the admission work)."""
    return {}
