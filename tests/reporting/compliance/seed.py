"""A small release history made through the real services, for the compliance report's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from approvals import services
from approvals.models import Release
from governance.authority.services import create_delegation
from governance.models import Role, Service, User
from tests import factories
from tests.approvals.emergencies.helpers import declare_for


def iso(moment: datetime) -> str:
    """How the report writes a time: UTC, ISO 8601, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass
class History:
    approved: Release  # two approvals (one by a delegate), the CAB, deployed with approval
    unapproved: Release  # pending, deployed anyway
    emergency: Release  # emergency change, approved with failing tests
    rejected: Release
    withdrawn: Release
    card_vault: Release  # another SOX service ("sox" written in lower case), pending
    outside: Release  # SOX, production, 40 days ago
    staging: Release  # SOX, not regulated
    not_sox: Release  # production, a service without SOX
    frank: User
    grace: User

    @property
    def sox_rows(self) -> list[Release]:
        """What the SOX report for the period holds, in request order."""
        return [
            self.approved,
            self.unapproved,
            self.emergency,
            self.rejected,
            self.withdrawn,
            self.card_vault,
        ]


def period() -> dict[str, str]:
    """The period around today that holds every release but `outside`."""
    today = timezone.now().date()
    return {
        "from": (today - timedelta(days=2)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
    }


def request(service: Service, environment, actor: User, **overrides) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment, **overrides), actor=actor
    )
    return release


def seed(
    *, service, low_tier_service, production, staging, requester, approver, cab_member, pipeline_bot
) -> History:
    """Nine releases; see History for what became of each."""
    frank = factories.UserFactory(username="frank", first_name="Frank")
    factories.grant(frank, Role.APPROVER, service)
    grace = factories.UserFactory(username="grace", first_name="Grace")
    now = timezone.now()
    create_delegation(
        delegator=frank,
        delegate=grace,
        service=service,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
        reason="Frank is on leave.",
        actor=frank,
    )
    card_vault = factories.ServiceFactory(
        slug="card-vault", tier=2, team=service.team, compliance_tags=["pci", "sox"]
    )

    approved = request(service, production, pipeline_bot, triggered_by="dave")
    services.add_evidence(
        release=approved, actor=pipeline_bot, kind="security-scan", status="passed", summary={}
    )
    factories.decide(approved, approver, rationale="Looks good.")
    factories.decide(approved, grace, rationale="Covering for Frank.")
    factories.decide(approved, cab_member, rationale="CAB agrees.")
    services.record_deployment(release=approved, actor=pipeline_bot, status="succeeded")

    unapproved = request(service, production, pipeline_bot, triggered_by="dave")
    services.record_deployment(release=unapproved, actor=pipeline_bot, status="succeeded")

    failing = ({"kind": "tests", "status": "failed", "summary": {"passed": 8, "failed": 2}},)
    emergency = request(
        service,
        production,
        pipeline_bot,
        triggered_by="dave",
        change_type="emergency",
        evidence=failing,
    )
    declare_for(emergency)
    factories.decide(emergency, approver, rationale="Emergency fix verified.")

    rejected = request(service, production, pipeline_bot, triggered_by="dave")
    factories.decide(rejected, approver, "reject", rationale="Missing rollback plan.")

    withdrawn = request(service, production, requester)
    services.withdraw_request(release=withdrawn, actor=requester, reason="Superseded.")

    vault = request(card_vault, production, pipeline_bot, triggered_by="=SUM(A1:A2)")

    outside = request(service, production, pipeline_bot)
    Release.objects.filter(pk=outside.pk).update(created_at=now - timedelta(days=40))
    return History(
        approved=approved,
        unapproved=unapproved,
        emergency=emergency,
        rejected=rejected,
        withdrawn=withdrawn,
        card_vault=vault,
        outside=outside,
        staging=request(service, staging, pipeline_bot),
        not_sox=request(low_tier_service, production, pipeline_bot),
        frank=frank,
        grace=grace,
    )


def day(offset: int) -> date:
    return timezone.now().date() + timedelta(days=offset)
