"""The decision service's edges (`approvals/services/decisions.py`, `record_decision`) that
mutation testing showed no test pinned down; each test names the rule it holds."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.exceptions import InvalidRequest
from approvals.models import ApprovalRequest, Decision
from governance.models import LedgerEntry
from tests import factories
from tests.invariants.test_rules import lend, request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("verdict", "rationale", "message"),
    [
        ("maybe", "Fine.", "Decision must be 'approve' or 'reject'."),
        ("approve", " \n ", "A rationale is required for every decision."),
    ],
    ids=["verdict", "rationale"],
)
def test_a_refused_decision_says_why_in_words_the_ui_and_api_show(
    production_release, approver, verdict, rationale, message
):
    with factories.nothing_changes(production_release), pytest.raises(InvalidRequest) as exc:
        factories.decide(production_release, approver, verdict, rationale)

    assert str(exc.value) == message


def test_eligibility_is_judged_at_the_moment_recorded_on_the_decision(
    production_release, approver, monkeypatch
):
    """The decision's time is the moment it was judged: one made a second before the request
    expires counts, even when the clock passes the deadline while it is being written."""
    deadline = ApprovalRequest.objects.get(release=production_release).expires_at
    moments = iter([deadline - timedelta(seconds=1)])
    # The first reading is the decision's moment; every later one is an hour past the deadline.
    monkeypatch.setattr(timezone, "now", lambda: next(moments, deadline + timedelta(hours=1)))

    decision = factories.decide(production_release, approver)

    assert decision.created_at == deadline - timedelta(seconds=1)
    assert Decision.objects.filter(request__release=production_release).count() == 1


def test_the_ledger_records_for_whom_a_delegate_decided(
    org, staging, service, approver, pipeline_bot
):
    frank = factories.UserFactory(username="frank")
    lend(approver, frank, service=service)
    release = request(service, staging, pipeline_bot)

    factories.decide(release, frank, rationale="Covering for alice.")

    entry = LedgerEntry.objects.filter(kind="decision.recorded").latest("seq")
    assert (entry.actor, entry.payload["on_behalf_of"], entry.payload["rationale"]) == (
        "frank",
        "alice",
        "Covering for alice.",
    )


def test_a_rejection_closes_the_stages_still_waiting_at_its_own_moment(
    production_release, approver
):
    rejection = factories.decide(production_release, approver, "reject", "Not this one.")

    first, *waiting = ApprovalRequest.objects.get(release=production_release).stages.order_by(
        "order"
    )
    assert first.status == "rejected"
    assert waiting and {stage.status for stage in waiting} == {"cancelled"}
    assert {stage.completed_at for stage in [first, *waiting]} == {rejection.created_at}


def test_a_decision_with_no_client_details_records_no_place_and_no_device(
    production_release, approver
):
    decision = services.record_decision(
        release=production_release, actor=approver, verdict="approve", rationale="Fine."
    )

    assert (decision.channel, decision.client_address, decision.client_device) == ("ui", None, "")


def test_a_decision_records_the_address_and_a_fingerprint_of_the_device_it_came_from(
    production_release, approver
):
    decision = services.record_decision(
        release=production_release,
        actor=approver,
        verdict="approve",
        rationale="Fine.",
        channel="api",
        client_address="203.0.113.5",
        user_agent="curl/8.5.0",
    )

    decision.refresh_from_db()
    assert (decision.channel, decision.client_address, decision.client_device) == (
        "api",
        "203.0.113.5",
        hashlib.sha256(b"curl/8.5.0").hexdigest()[:16],
    )
