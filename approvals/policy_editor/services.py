"""Proposing a draft policy: simulated first, so loosening always meets a second administrator."""

from __future__ import annotations

from dataclasses import dataclass

from approvals.policy_editor import simulation as simulator
from governance.exceptions import InvalidPolicy
from governance.people.models import User
from governance.policy import engine
from governance.policy import services as policy_changes
from governance.policy.models import Policy, PolicyProposal, PolicyVersion


@dataclass
class Proposed:
    result: PolicyVersion | PolicyProposal
    simulation: simulator.Simulation

    @property
    def published(self) -> bool:
        return isinstance(self.result, PolicyVersion)


def propose_policy(
    *,
    policy_obj: Policy,
    source: str,
    actor: User,
    comment: str,
    days: int = simulator.DEFAULT_DAYS,
) -> Proposed:
    """Simulate `source` against the published version, then change the policy through the
    four-eyes service. Loosening found on regulated environments goes with it, which makes
    it a proposal for a second administrator whoever proposes it. The simulation runs here,
    on the server, so what a page or a file claims about loosening never decides."""
    _check(source)
    if engine.checksum(source) == engine.checksum(policy_obj.source):
        raise InvalidPolicy(
            f"This is {policy_obj.slug} v{policy_obj.version} as published; nothing to propose.",
            fields={"source": ["Unchanged from the published version."]},
        )
    if policy_obj.version:
        result = simulator.simulate(draft=source, published=policy_obj.source, days=days)
    else:
        # A first version loosens nothing: there is no published plan to compare with.
        result = simulator.Simulation(days, simulated=0, capped=False)
    changed = policy_changes.change_policy(
        policy_obj=policy_obj,
        source=source,
        actor=actor,
        comment=comment,
        loosening=result.loosening(),
    )
    return Proposed(changed, result)


def _check(source: str) -> None:
    try:
        engine.parse(source)
    except engine.PolicyError as exc:
        raise InvalidPolicy(str(exc), fields={"source": [str(exc)]}) from None
