"""The emergency path's workflow: declaring, ending, and the CAB's secondary review.

Every write is one transaction with its ledger entry inside; notifications and outbound events
are outbox rows written in the same transaction, delivered after it commits.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from approvals.emergencies.exceptions import (
    EmergencyConflict,
    EmergencyForbidden,
    InvalidEmergency,
)
from approvals.emergencies.models import EmergencyException
from governance.authority.selectors import has_stage_authority
from governance.ledger import services as ledger
from governance.models import User

Review = EmergencyException.Review


def record_secondary_review(
    *,
    emergency: EmergencyException,
    actor: User,
    outcome: str,
    notes: str,
    now: datetime | None = None,
) -> EmergencyException:
    """Record the CAB's secondary review of `emergency`: justified, or not justified with the
    actions to take. A CAB member of the service other than the declarer records it, once."""
    outcome = (outcome or "").strip()
    notes = (notes or "").strip()
    _check_review_input(outcome, notes)
    # The declarer never judges their own emergency: the review is a second pair of eyes.
    if emergency.declared_by_id == actor.pk:
        raise EmergencyForbidden("You declared this emergency; another CAB member must review it.")
    if not has_stage_authority(actor, emergency.service, "cab"):
        raise EmergencyForbidden(
            f"Only CAB members of {emergency.service.name} review its emergencies."
        )
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock makes two members recording at once see each other: the second is told.
        locked = EmergencyException.objects.select_for_update().get(pk=emergency.pk)
        if locked.secondary_review:
            raise EmergencyConflict(
                f"The CAB already reviewed this emergency: {locked.get_secondary_review_display()}."
            )
        locked.secondary_review, locked.secondary_review_notes = outcome, notes
        locked.reviewed_by, locked.reviewed_at = actor, now
        fields = ["secondary_review", "secondary_review_notes", "reviewed_by", "reviewed_at"]
        locked.save(update_fields=fields)
        ledger.append(
            kind="emergency.reviewed",
            subject=f"change:{locked.change_id}",
            actor=actor.username,
            payload={"emergency": locked.pk, "outcome": outcome, "notes": notes},
        )
    return locked


def _check_review_input(outcome: str, notes: str) -> None:
    if outcome not in (Review.JUSTIFIED, Review.NOT_JUSTIFIED):
        raise InvalidEmergency(
            "Choose an outcome: justified or not justified.",
            fields={"outcome": ["Choose justified or not justified."]},
        )
    if outcome == Review.NOT_JUSTIFIED and not notes:
        raise InvalidEmergency(
            "An emergency found not justified needs notes naming the actions to take.",
            fields={"notes": ["Name the actions to take."]},
        )
