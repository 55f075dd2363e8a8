"""Invariant 20, checked after every step: about the CAB's meetings, their agendas and decisions,
and the reviews that follow an emergency."""

from __future__ import annotations

from tests.invariants.checks import Record, Requests
from tests.invariants.oracle import World


def check_cab(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 20 after every step (`wrote`: whether the step wrote anything)."""
