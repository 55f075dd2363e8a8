"""Invariant 21, checked after every step: about policies imported from a folder of files, and what
auditors take away."""

from __future__ import annotations

from tests.invariants.checks import Record, Requests
from tests.invariants.oracle import World


def check_evidence(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 21 after every step (`wrote`: whether the step wrote anything)."""
