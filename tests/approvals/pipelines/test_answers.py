"""When runs are answered: approved only while the gate says approved now (the beat task answers
runs whose gate cleared later); rejected for a rejection, a withdrawal or an expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from approvals.pipelines.models import PipelineWait
from approvals.pipelines.tasks import answer_waiting_pipelines_task
from governance.models import Delivery
from tests import factories
from tests.approvals.pipelines import payloads

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(client, gitlab, mapped, github_release) -> PipelineWait:
    response = client.post(
        "/integrations/gitlab/",
        payloads.dumps(payloads.gitlab_event()),
        content_type="application/json",
        **payloads.gitlab_headers(),
    )
    assert response.status_code == 200
    return PipelineWait.objects.get()


def test_an_approval_the_gate_still_blocks_waits_for_the_task(
    waiting, github_release, pipeline_bot, approver, second_approver, cab_member
):
    services.add_evidence(
        release=github_release,
        actor=pipeline_bot,
        kind="tests",
        status="failed",
        summary={"passed": 10, "failed": 2},
    )
    for person in (approver, second_approver, cab_member):
        factories.decide(github_release, person)
    assert ApprovalRequest.objects.get(release=github_release).status == "approved"
    assert answer_waiting_pipelines_task() == 0
    waiting.refresh_from_db()
    assert (waiting.state, Delivery.objects.count()) == ("waiting", 0)

    services.add_evidence(
        release=github_release,
        actor=pipeline_bot,
        kind="tests",
        status="passed",
        summary={"passed": 12, "failed": 0},
    )
    assert answer_waiting_pipelines_task() == 1

    waiting.refresh_from_db()
    assert (waiting.state, waiting.answer) == ("answered", "approved")
    assert Delivery.objects.get().payload["status"] == "approved"
    assert answer_waiting_pipelines_task() == 0


def test_an_expired_request_is_answered_rejected(waiting, github_release):
    ApprovalRequest.objects.filter(release=github_release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    assert services.expire_requests() == 1

    waiting.refresh_from_db()
    assert (waiting.state, waiting.answer) == ("answered", "rejected")
    assert Delivery.objects.get().payload["comment"] == (
        f"Signoff release #{github_release.pk} is expired: The approval request expired; "
        "request a new approval."
    )


def test_a_pending_request_past_its_deadline_is_answered_by_the_task(waiting, github_release):
    ApprovalRequest.objects.filter(release=github_release).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    assert answer_waiting_pipelines_task() == 1

    assert Delivery.objects.get().payload["status"] == "rejected"


def test_a_long_rationale_is_cut_to_githubs_limit(waiting, github_release, approver):
    factories.decide(github_release, approver, "reject", "Too risky. " * 200)

    comment = Delivery.objects.get().payload["comment"]
    assert len(comment) == 1024
    assert comment.endswith("…")
