"""The model's steps about Kubernetes clusters asking the admission webhook whether an image may
run."""

from __future__ import annotations


class ClusterSteps:
    """Mixed into the model (`model.Organisation`)."""

    def setup_cluster(self) -> None:
        """Called once when an example starts, before any step."""
