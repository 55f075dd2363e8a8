"""The model's steps about CI/CD deployment gates (GitHub deployment protection rules, GitLab
deployment approvals) waiting on the gate."""

from __future__ import annotations


class PipelineSteps:
    """Mixed into the model (`model.Organisation`)."""

    def setup_pipeline(self) -> None:
        """Called once when an example starts, before any step."""
