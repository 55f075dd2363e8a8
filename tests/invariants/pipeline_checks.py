"""Invariant 22, checked after every step: about CI/CD deployment gates (GitHub deployment
protection rules, GitLab deployment approvals) waiting on the gate."""

from __future__ import annotations

from tests.invariants.checks import Record, Requests
from tests.invariants.oracle import World


def check_pipelines(
    world: World, record: Record, requests: Requests, answers: dict[int, str], *, wrote: bool
) -> None:
    """Invariant 22 after every step (`wrote`: whether the step wrote anything)."""
