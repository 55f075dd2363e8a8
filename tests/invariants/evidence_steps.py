"""The model's steps about policies imported from a folder of files, and what auditors take away."""

from __future__ import annotations


class EvidenceSteps:
    """Mixed into the model (`model.Organisation`)."""

    def setup_evidence(self) -> None:
        """Called once when an example starts, before any step."""
