"""The expiry sweep: undecided requests past their deadline and approvals past their validity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.gate import evaluate_gate
from approvals.models import ApprovalRequest, Release
from governance.authority.services import revoke_role
from governance.models import LedgerEntry, Role, RoleAssignment
from tests import factories


def status_of(release: Release) -> str:
    return ApprovalRequest.objects.get(release=release).status


def set_times(release: Release, **fields) -> None:
    ApprovalRequest.objects.filter(release=release).update(**fields)


@pytest.fixture
def releases(
    org, service, low_tier_service, production, staging, pipeline_bot, approver, second_approver
):
    """One release in each situation the sweep must tell apart."""
    past = timezone.now() - timedelta(minutes=5)
    future = timezone.now() + timedelta(hours=1)

    def new(svc, env):
        release, _ = services.request_approval(
            data=factories.release_input(svc, env), actor=pipeline_bot
        )
        return release

    made = {
        "overdue": new(service, production),
        "waiting": new(service, production),
        "stale_approval": new(low_tier_service, staging),
        "valid_approval": new(low_tier_service, staging),
        "rejected_overdue": new(low_tier_service, staging),
    }
    set_times(made["overdue"], expires_at=past)
    set_times(made["waiting"], expires_at=future)
    for key in ("stale_approval", "valid_approval"):
        factories.decide(made[key], approver)
    set_times(made["stale_approval"], valid_until=past, expires_at=past)
    set_times(made["valid_approval"], valid_until=future + timedelta(hours=1), expires_at=past)
    factories.decide(made["rejected_overdue"], second_approver, "reject", "Not this week.")
    set_times(made["rejected_overdue"], expires_at=past)
    return made


def test_expiry_marks_overdue_requests_and_stale_approvals_expired(releases):
    before = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first()

    expired = services.expire_requests()

    assert expired == 2
    assert {name: status_of(release) for name, release in releases.items()} == {
        "overdue": "expired",
        "waiting": "pending",
        "stale_approval": "expired",
        "valid_approval": "approved",
        "rejected_overdue": "rejected",
    }
    entries = LedgerEntry.objects.filter(seq__gt=before)
    assert sorted(
        (e.kind, e.subject, e.actor, tuple(sorted(e.payload.items()))) for e in entries
    ) == sorted(
        [
            (
                "gate.transition",
                f"release:{releases['overdue'].pk}",
                "system",
                (("from", "pending"), ("to", "expired")),
            ),
            (
                "gate.transition",
                f"release:{releases['stale_approval'].pk}",
                "system",
                (("from", "approved"), ("to", "expired")),
            ),
        ]
    )


def test_expiry_twice_changes_nothing_more(releases):
    services.expire_requests()
    counts = factories.state_counts()
    statuses = {name: status_of(release) for name, release in releases.items()}

    assert services.expire_requests() == 0

    assert factories.state_counts() == counts
    assert {name: status_of(release) for name, release in releases.items()} == statuses


def test_expiry_at_a_given_moment_uses_that_moment(releases):
    waiting = ApprovalRequest.objects.get(release=releases["waiting"])

    assert services.expire_requests(now=waiting.expires_at - timedelta(seconds=1)) == 2
    assert status_of(releases["waiting"]) == "pending"
    assert services.expire_requests(now=waiting.expires_at) == 1
    assert status_of(releases["waiting"]) == "expired"
    assert ApprovalRequest.objects.get(release=releases["waiting"]).decided_at == (
        waiting.expires_at
    )


def test_expiry_sweeps_in_batches(releases, monkeypatch):
    monkeypatch.setattr(services.sweeps, "EXPIRE_BATCH", 1)

    assert services.expire_requests() == 2
    assert status_of(releases["overdue"]) == status_of(releases["stale_approval"]) == "expired"


def gate_reasons(release) -> str:
    return " ".join(evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).reasons)


def test_open_stages_follow_role_changes_and_deactivations(
    production_release, second_approver, approver, service
):
    assert "eligible: alice, bob" in gate_reasons(production_release)
    revoke_role(
        assignment=RoleAssignment.objects.get(user=second_approver, service=service),
        reason="Left the team",
        actor=None,
    )
    factories.grant(factories.UserFactory(username="nina"), Role.APPROVER, service)
    approver.is_active = False
    approver.save(update_fields=["is_active"])

    assert services.reresolve_open_stages() == 1
    assert "eligible: nina," in gate_reasons(production_release)
    assert services.reresolve_open_stages() == 0  # nothing left to change
