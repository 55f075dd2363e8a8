"""The model's steps about the CAB's meetings, their agendas and decisions, and the reviews that
follow an emergency."""

from __future__ import annotations


class CabSteps:
    """Mixed into the model (`model.Organisation`)."""

    def setup_cab(self) -> None:
        """Called once when an example starts, before any step."""
