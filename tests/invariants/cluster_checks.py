"""Invariant 19, checked after every step: about Kubernetes clusters asking the admission webhook
whether an image may run."""

from __future__ import annotations

from tests.invariants.checks import Record, Requests
from tests.invariants.oracle import World


def check_clusters(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 19 after every step (`wrote`: whether the step wrote anything)."""
