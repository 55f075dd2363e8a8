"""What the release page shows about the pipeline runs waiting on its gate."""

from __future__ import annotations

from approvals.models import Release


def pipeline_panel(release: Release) -> dict:
    """The pipeline runs linked to the release and what they were answered."""
    return {}
