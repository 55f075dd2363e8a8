"""The model's steps about faults of the running system: work handed out twice by the broker.

Celery acknowledges a task when it ends (docs/workers.md): a worker killed after the task did its
work but before the acknowledgement reaches Redis hands the same task to another worker, which
runs it again at about the same moment. Every periodic task must then find nothing left to do.
"""

from __future__ import annotations

from hypothesis.stateful import rule

from governance.models import Delivery, Notification
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import tally


def _outbound() -> tuple[int, int]:
    """What the sweeps may send: notifications and outbound deliveries, counted."""
    return Notification.objects.count(), Delivery.objects.count()


class FaultSteps:
    """Redelivered work (mixed into the model)."""

    @rule()
    def periodic_tasks_redelivered(self) -> None:
        """Beat's sweeps run, then run again at the same moment, as a task whose worker died
        before acknowledging it is run a second time: the second run changes nothing, sends
        no second reminder, escalation or notice, and writes no second ledger entry."""
        self.step("periodic_tasks_redelivered")
        self.periodic_tasks()
        self.trail.pop()  # one step in the trail, named for what it is
        before, sent = fingerprint.take(), _outbound()
        self.periodic_tasks()
        self.trail.pop()
        changed = fingerprint.changed(before)
        require(not changed, 8, f"the sweeps run a second time at one moment changed {changed}")
        again = _outbound()
        require(again == sent, 8, f"the second run sent more (notifications, deliveries): {again}")
        tally["sweeps redelivered"] += 1
