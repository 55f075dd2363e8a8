"""A policy can require every release's change to exist in the ITSM tool and be authorised
there (`itsm_change: true`): unknown or unauthorised changes are refused at request time, and a
change that leaves the authorised states later blocks the gate."""

from __future__ import annotations

import pytest

from approvals.gate import evaluate_gate
from approvals.models import Release
from changes.models import ChangeRecord
from changes.records.services import set_change_state
from governance.models import Policy
from governance.policy.engine import PolicyError, parse
from governance.policy.services import publish_policy
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/v1/releases/"

POLICY = """
rules:
  - id: itsm-authorised
    description: Production changes must be authorised in ServiceNow.
    when: environment.risk == "high"
    require:
      itsm_change: true
  - id: one-approver
    description: One approver everywhere.
    when: "true"
    require:
      stages:
        - key: service
          approvers: service_approvers
          count: 1
"""


@pytest.fixture
def itsm_policy(org):
    publish_policy(policy_obj=Policy.objects.get(slug="default"), actor=None, source=POLICY)


def mirrored(ref: str, state: str) -> ChangeRecord:
    return ChangeRecord.objects.create(
        ref=ref, title="From ServiceNow", source="servicenow", external_id=ref.lower(), state=state
    )


def request(api, bot, ref: str, environment: str = "production"):
    change = {"ref": ref, "type": "normal", "title": "Payments API 2.14.0"}
    return api(bot).post(URL, factories.release_body(environment=environment, change=change))


@pytest.mark.parametrize(
    ("prepare", "says"),
    [
        (lambda: None, "is not known from the ITSM tool"),
        (lambda: ChangeRecord.objects.create(ref="CHG0040001", title="Local"), "not known"),
        (lambda: mirrored("CHG0040001", "assess"), "is assess in the ITSM tool"),
        (lambda: mirrored("CHG0040001", "cancelled"), "is cancelled in the ITSM tool"),
    ],
)
def test_a_release_whose_change_is_not_authorised_in_the_itsm_tool_is_refused(
    api, itsm_policy, pipeline_bot, prepare, says
):
    prepare()
    before = factories.state_counts()

    response = request(api, pipeline_bot, "CHG0040001")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_change" and says in error["message"]
    assert "ref" in error["fields"]["change"]
    assert factories.state_counts() == before


def test_an_authorised_change_is_accepted_and_its_later_cancellation_blocks_the_gate(
    api, itsm_policy, pipeline_bot, approver, administrator
):
    change = mirrored("CHG0040002", "scheduled")

    response = request(api, pipeline_bot, "CHG0040002")
    assert response.status_code == 201, response.json()
    release = Release.objects.get(pk=response.json()["id"])
    factories.decide(release, approver)
    assert evaluate_gate(Release.objects.for_gate().get(pk=release.pk)).status == "approved"

    set_change_state(change=change, state="assess", actor="servicenow", reason="Sent back.")

    gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk))
    assert gate.status == "blocked"
    assert gate.reasons == [
        "Change record CHG0040002 is assess in the ITSM tool; the policy requires it to be "
        "authorised there."
    ]


def test_where_no_rule_asks_for_it_any_change_ref_opens_a_local_record(
    api, itsm_policy, pipeline_bot
):
    response = request(api, pipeline_bot, "CHG0040003", environment="staging")

    assert response.status_code == 201
    assert ChangeRecord.objects.get(ref="CHG0040003").source == "signoff"


def test_itsm_change_must_be_a_boolean():
    with pytest.raises(PolicyError, match="itsm_change must be true or false"):
        parse(POLICY.replace("itsm_change: true", 'itsm_change: "yes"'))


def test_a_checklist_requiring_itsm_authorisation_names_itself_in_the_gate_reason(
    api, org, pipeline_bot, approver
):
    """With `checkpoint: SOX` on the rule, an unauthorised change is a SOX item: the reason says so
    (as every checklist item's does), so the auditor's checklist and the gate agree."""
    source = POLICY.replace(
        "  - id: itsm-authorised\n", "  - id: itsm-authorised\n    checkpoint: SOX\n"
    )
    publish_policy(policy_obj=Policy.objects.get(slug="default"), actor=None, source=source)
    change = mirrored("CHG0040004", "scheduled")
    release = Release.objects.get(pk=request(api, pipeline_bot, "CHG0040004").json()["id"])
    factories.decide(release, approver)

    set_change_state(change=change, state="assess", actor="servicenow", reason="Sent back.")

    gate = evaluate_gate(Release.objects.for_gate().get(pk=release.pk))
    assert gate.reasons == [
        "SOX: Change record CHG0040004 is assess in the ITSM tool; the policy requires it to be "
        "authorised there."
    ]
