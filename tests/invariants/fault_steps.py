"""The model's steps about faults of the running system: work handed out twice by the broker,
and the database lost in the middle of a decision.

Celery acknowledges a task when it ends (docs/workers.md): a worker killed after the task did its
work but before the acknowledgement reaches Redis hands the same task to another worker, which
runs it again at about the same moment. Every periodic task must then find nothing left to do.

A database that goes away (a restart, a failover) after a decision's rows and its ledger entry
were written but before the commit must leave nothing of the decision, and its decider a clear
503 (governance/unavailable.py) rather than a page that says it was recorded.
"""

from __future__ import annotations

import json
from unittest import mock

from django.db import OperationalError
from django.test import Client
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from governance.ledger import services as ledger
from governance.models import Delivery, Notification
from tests.invariants import fingerprint
from tests.invariants.checks import require
from tests.invariants.drawing import REFUSALS, release_indexes, tally

LOST = "server closed the connection unexpectedly"


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

    @precondition(lambda self: self.releases)
    @rule(
        release=release_indexes,
        pick=st.integers(0, 5),
        verdict=st.sampled_from(("approve", "reject")),
        in_the_browser=st.booleans(),
    )
    def decision_cut_short(self, release: int, pick: int, verdict: str, in_the_browser) -> None:
        """Someone the release page lists decides, on that page or with their token, and the
        connection to the database is lost once the decision and its ledger entry are written,
        before the commit: they are told to try again (503), and nothing of the decision stays."""
        self.step("decision_cut_short")
        waiting = self.waiting_decider(release, pick)
        if waiting is None:
            return
        name, index = waiting
        user, target = self.user(name), self.release(index)
        if user is None or (not in_the_browser and self.token(name) is None):
            return
        # Django's own handling of the exception, as a server gives it: no test re-raise.
        client = Client(raise_request_exception=False)
        if in_the_browser:
            client.force_login(user)
        key = None if in_the_browser else self.token(name)
        write = ledger._write_all

        def written_then_lost(entries: list[dict]):
            write(entries)
            raise OperationalError(LOST)

        before = fingerprint.take()
        with mock.patch.object(ledger, "_write_all", written_then_lost):
            if in_the_browser:
                response = client.post(
                    f"/approvals/releases/{target.pk}/decide/",
                    {"verdict": verdict, "rationale": "Reviewed as the database went (model)"},
                )
            else:
                response = client.post(
                    f"/api/v1/releases/{target.pk}/decisions/",
                    json.dumps({"decision": verdict, "rationale": "Reviewed (model)"}),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {key}",
                )
        status = response.status_code
        require(
            status == 503 or status in REFUSALS or status == 302,
            7,
            f"a decision cut short by the database answered {status}: {response.content[:300]!r}",
        )
        if status == 503:
            require(b"Nothing was changed" in response.content, 7, "the 503 does not say so")
            require(response["Retry-After"] == "30", 7, "the 503 names no time to retry")
        changed = fingerprint.changed(before)
        require(not changed, 7, f"a decision cut short by the database left {changed}")
        tally[f"decision cut short: {status}"] += 1
