"""Decisions, in the service and through POST /api/v1/releases/<id>/decisions/.

Segregation of duties: nobody approves their own work, N distinct people per stage, one stage per
person under dual control, and only people who hold the authority *now*.
"""

from __future__ import annotations

import base64

import pyotp
import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals import services
from approvals.exceptions import (
    InvalidRequest,
    InvalidTransition,
    NotEligible,
    SelfApprovalForbidden,
)
from approvals.models import ApprovalRequest, Decision
from changes.models import ChangeRecord
from governance.authority.services import revoke_role
from governance.identity import services as identity
from governance.models import LedgerEntry, Policy, Role, RoleAssignment, User
from governance.policy.services import publish_policy
from tests import factories

RATIONALE = "Reviewed the diff, the migration plan and the test report."
SELF_APPROVAL = (
    "You requested this release, triggered its pipeline or wrote its change record; "
    "someone else must approve it."
)
NOT_ELIGIBLE = "You are not an eligible approver for Service approval."


def decisions_url(release) -> str:
    return f"/api/v1/releases/{release.pk}/decisions/"


def post_decision(client, release, **overrides):
    body = {"decision": "approve", "rationale": RATIONALE, "digest": release.digest}
    body.update(overrides)
    return client.post(decisions_url(release), {k: v for k, v in body.items() if v is not None})


def request_release(service, env, actor, **overrides):
    release, _ = services.request_approval(
        data=factories.release_input(service, env, **overrides), actor=actor
    )
    return release


def error_of(response, status: int) -> dict:
    assert response.status_code == status
    return response.json()["error"]


# --- Who may never approve -----------------------------------------------------------------------


def test_the_person_behind_the_pipeline_cannot_approve_it(
    org, service, production, requester, pipeline_bot, api
):
    factories.grant(requester, Role.APPROVER, service)
    release = request_release(service, production, pipeline_bot, triggered_by="dave")

    with factories.nothing_changes(release):
        response = post_decision(api(requester), release)

    assert error_of(response, 403) == {
        "code": "self_approval_forbidden",
        "message": SELF_APPROVAL,
        "fields": {},
    }


def test_the_token_owner_who_requested_cannot_approve(org, service, api):
    frank = factories.UserFactory(username="frank")
    factories.grant(frank, Role.RELEASE_MANAGER, service)
    factories.grant(frank, Role.APPROVER, service)
    client = api(frank)
    body = factories.release_body(pipeline={"provider": "manual"})
    release_id = client.post("/api/v1/releases/", body).json()["id"]
    release = ApprovalRequest.objects.get(release_id=release_id).release

    with factories.nothing_changes(release):
        response = post_decision(client, release)

    assert error_of(response, 403)["code"] == "self_approval_forbidden"
    assert release.requested_by == frank
    assert release.triggered_by is None


def test_the_change_author_cannot_approve(
    org, service, production, second_approver, pipeline_bot, api
):
    ChangeRecord.objects.create(ref="CHG0000777", title="Bob's change", author=second_approver)
    release = request_release(service, production, pipeline_bot, change_ref="CHG0000777")

    with factories.nothing_changes(release):
        response = post_decision(api(second_approver), release)
        with pytest.raises(SelfApprovalForbidden) as excinfo:
            factories.decide(release, second_approver)

    assert error_of(response, 403)["code"] == "self_approval_forbidden"
    assert excinfo.value.code == "self_approval_forbidden"
    stage = release.approval.stages.get(key="service")
    assert list(stage.eligible_approvers.values_list("username", flat=True)) == ["alice"]


def test_the_requester_cannot_approve_in_the_service_layer(production_release, requester):
    factories.grant(requester, Role.APPROVER, production_release.service)

    with (
        factories.nothing_changes(production_release),
        pytest.raises(SelfApprovalForbidden) as excinfo,
    ):
        factories.decide(production_release, requester)

    assert (excinfo.value.code, excinfo.value.message) == ("self_approval_forbidden", SELF_APPROVAL)


def test_a_service_account_can_never_approve(org, service, production, pipeline_bot, api):
    # Granting it the role is refused outright (see test_roles); this account was flagged as a
    # service account only after its grant, so the decision path must refuse it by itself.
    deploy_bot = factories.UserFactory(username="deploy-bot")
    factories.grant(deploy_bot, Role.APPROVER, service)
    deploy_bot.is_service_account = True
    deploy_bot.save(update_fields=["is_service_account"])
    release = request_release(service, production, pipeline_bot)

    with factories.nothing_changes(release):
        response = post_decision(api(deploy_bot), release)
        with pytest.raises(NotEligible) as excinfo:
            factories.decide(release, deploy_bot)

    message = "Service accounts request releases; only people approve them."
    assert error_of(response, 403) == {"code": "not_eligible", "message": message, "fields": {}}
    assert excinfo.value.message == message
    assert not release.approval.stages.filter(eligible_approvers=deploy_bot).exists()


# --- Distinct approvers, stage order, dual control -----------------------------------------------


def test_a_stage_needs_n_distinct_approvers(production_release, approver, second_approver):
    factories.decide(production_release, approver)

    assert factories.approval_snapshot(production_release) == {
        "status": "pending",
        "stages": [("service", "active", 1), ("cab", "waiting", 0)],
    }

    factories.decide(production_release, second_approver)

    assert factories.approval_snapshot(production_release) == {
        "status": "pending",
        "stages": [("service", "approved", 2), ("cab", "active", 0)],
    }


def test_the_same_approver_twice_on_a_stage_is_refused(production_release, approver, api):
    factories.decide(production_release, approver)

    with factories.nothing_changes(production_release):
        response = post_decision(api(approver), production_release)
        with pytest.raises(NotEligible) as excinfo:
            factories.decide(production_release, approver)

    message = "You have already decided Service approval; it needs distinct approvers."
    assert error_of(response, 403) == {"code": "not_eligible", "message": message, "fields": {}}
    assert excinfo.value.message == message
    assert Decision.objects.filter(approver=approver).count() == 1


def test_a_cab_member_cannot_decide_before_the_service_stage_completes(
    production_release, approver, cab_member, api
):
    factories.decide(production_release, approver)

    with factories.nothing_changes(production_release):
        response = post_decision(api(cab_member), production_release)

    assert error_of(response, 403) == {
        "code": "not_eligible",
        "message": "CAB approval opens after Service approval is complete.",
        "fields": {},
    }


def test_under_dual_control_one_person_counts_in_one_stage_only(
    org, service, production, pipeline_bot, approver, cab_member, api
):
    grace = factories.UserFactory(username="grace")
    factories.grant(grace, Role.APPROVER, service)
    factories.grant(grace, Role.CAB_MEMBER)
    release = request_release(service, production, pipeline_bot)
    factories.decide(release, approver)
    factories.decide(release, grace)

    with factories.nothing_changes(release):
        response = post_decision(api(grace), release)

    assert release.approval.dual_control is True
    assert error_of(response, 403) == {
        "code": "not_eligible",
        "message": "Dual control: you already decided another stage of this request; "
        "one person counts in one stage only.",
        "fields": {},
    }
    factories.decide(release, cab_member)
    assert factories.approval_snapshot(release)["status"] == "approved"


def test_an_approval_through_the_api_is_recorded_and_ledgered(production_release, approver, api):
    before = LedgerEntry.objects.count()

    response = post_decision(api(approver), production_release)

    assert response.status_code == 201
    decision = Decision.objects.get()
    assert response.json() == {
        "id": decision.pk,
        "stage": "Service approval",
        "approver": "alice",
        "decision": "approve",
        "rationale": RATIONALE,
        "digest": production_release.digest,
        "step_up_method": "",
        "created_at": response.json()["created_at"],
    }
    assert (decision.channel, decision.dual_control, decision.on_behalf_of) == ("api", True, None)
    entry = LedgerEntry.objects.get(seq__gt=before)
    assert (entry.kind, entry.subject, entry.actor) == (
        "decision.recorded",
        f"release:{production_release.pk}",
        "alice",
    )
    assert entry.payload == {
        "service": "payments-api",
        "stage": "service",
        "verdict": "approve",
        "rationale": RATIONALE,
        "digest": production_release.digest,
        "on_behalf_of": None,
        "step_up": "",
        "channel": "api",
    }


# --- Rejection -----------------------------------------------------------------------------------


def test_a_rejection_rejects_the_request_and_cancels_waiting_stages(
    production_release, approver, second_approver, api
):
    before = LedgerEntry.objects.count()

    response = post_decision(
        api(approver),
        production_release,
        decision="reject",
        rationale="No rollback for migration 0042.",
    )

    assert response.status_code == 201
    assert factories.approval_snapshot(production_release) == {
        "status": "rejected",
        "stages": [("service", "rejected", 0), ("cab", "cancelled", 0)],
    }
    approval = ApprovalRequest.objects.get(release=production_release)
    assert approval.decided_at is not None
    assert approval.valid_until is None
    entries = LedgerEntry.objects.filter(seq__gt=before).order_by("seq")
    assert [(e.kind, e.payload.get("verdict"), e.payload.get("to")) for e in entries] == [
        ("decision.recorded", "reject", None),
        ("gate.transition", None, "rejected"),
    ]
    assert entries[1].payload == {"from": "pending", "to": "rejected"}

    with factories.nothing_changes(production_release):
        late = post_decision(api(second_approver), production_release)
    assert error_of(late, 409) == {
        "code": "invalid_transition",
        "message": "This request is rejected; no more decisions.",
        "fields": {},
    }


# --- Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"rationale": None}, {"rationale": ["This field is required."]}),
        ({"rationale": "   "}, {"rationale": ["This field may not be blank."]}),
        ({"decision": "maybe"}, {"decision": ['"maybe" is not a valid choice.']}),
        ({"decision": None}, {"decision": ["This field is required."]}),
        (
            {"digest": factories.digest("something else")},
            {"digest": ["Does not match the release's artifact."]},
        ),
    ],
    ids=["missing-rationale", "blank-rationale", "maybe", "missing-decision", "other-digest"],
)
def test_bad_decision_input_is_refused_with_field_errors(
    production_release, approver, api, overrides, fields
):
    with factories.nothing_changes(production_release):
        response = post_decision(api(approver), production_release, **overrides)

    error = error_of(response, 400)
    assert (error["code"], error["fields"]) == ("invalid", fields)


def test_a_decision_on_another_digest_says_what_was_reviewed(production_release, approver, api):
    other = factories.digest("rebuilt")

    response = post_decision(api(approver), production_release, digest=other)

    assert error_of(response, 400)["message"] == (
        f"You reviewed {other}, but this release is {production_release.digest}."
    )


@pytest.mark.parametrize(
    ("verdict", "rationale", "fields"),
    [
        ("approve", "  \n ", {"rationale": ["This field is required."]}),
        ("approve", "", {"rationale": ["This field is required."]}),
        ("maybe", "Fine.", {"decision": ["Must be 'approve' or 'reject'."]}),
    ],
    ids=["whitespace", "empty", "maybe"],
)
def test_the_service_refuses_bad_decisions_before_writing(
    production_release, approver, verdict, rationale, fields
):
    with factories.nothing_changes(production_release), pytest.raises(InvalidRequest) as exc:
        factories.decide(production_release, approver, verdict, rationale)

    assert exc.value.fields == fields


def test_the_service_refuses_a_decision_on_another_digest(production_release, approver):
    with factories.nothing_changes(production_release), pytest.raises(InvalidRequest) as exc:
        services.record_decision(
            release=production_release,
            actor=approver,
            verdict="approve",
            rationale=RATIONALE,
            digest=factories.digest("other"),
        )

    assert exc.value.fields == {"digest": ["Does not match the release's artifact."]}


# --- Scope and authority -------------------------------------------------------------------------


def test_an_outsider_gets_404(production_release, outsider, api):
    with factories.nothing_changes(production_release):
        response = post_decision(api(outsider), production_release)

    assert error_of(response, 404) == {"code": "not_found", "message": "Not found.", "fields": {}}


def test_an_auditor_may_look_but_not_decide(production_release, auditor, api):
    client = api(auditor)

    with factories.nothing_changes(production_release):
        response = post_decision(client, production_release)

    assert error_of(response, 403) == {
        "code": "not_eligible",
        "message": "You hold the auditor role: auditors are independent and decide nothing, "
        "on their own authority or as anyone's delegate.",
        "fields": {},
    }
    assert client.get(f"/api/v1/releases/{production_release.pk}/").status_code == 200


def test_a_role_revoked_mid_request_removes_the_ability_to_approve(
    production_release, approver, api
):
    client = api(approver)
    assignment = RoleAssignment.objects.get(
        user=approver, role=Role.APPROVER, service=production_release.service
    )

    revoke_role(assignment=assignment, reason="Moved to another team.", actor=None)

    with factories.nothing_changes(production_release):
        response = post_decision(client, production_release)
        with pytest.raises(NotEligible) as excinfo:
            factories.decide(production_release, User.objects.get(pk=approver.pk))
    assert error_of(response, 404)["code"] == "not_found"  # no longer even in scope
    assert excinfo.value.message == NOT_ELIGIBLE
    stage = production_release.approval.stages.get(key="service")
    assert stage.eligible_approvers.filter(pk=approver.pk).exists()  # frozen, but not authorised


def test_a_revoked_approver_who_can_still_look_is_not_eligible(production_release, approver, api):
    factories.grant(approver, Role.RELEASE_MANAGER, production_release.service)
    assignment = RoleAssignment.objects.get(
        user=approver, role=Role.APPROVER, service=production_release.service
    )
    revoke_role(assignment=assignment, reason="Moved to another team.", actor=None)

    with factories.nothing_changes(production_release):
        response = post_decision(api(approver), production_release)

    assert error_of(response, 403) == {
        "code": "not_eligible",
        "message": NOT_ELIGIBLE,
        "fields": {},
    }


def test_a_deactivated_user_cannot_approve(production_release, approver, api):
    client = api(approver)
    approver.is_active = False
    approver.save(update_fields=["is_active"])

    with factories.nothing_changes(production_release):
        response = post_decision(client, production_release)
        with pytest.raises(NotEligible) as excinfo:
            factories.decide(production_release, approver)

    assert error_of(response, 401)["code"] == "authentication_failed"
    assert excinfo.value.message == NOT_ELIGIBLE


def test_an_expired_request_takes_no_more_decisions(production_release, approver):
    ApprovalRequest.objects.filter(release=production_release).update(
        expires_at=production_release.approval.requested_at
    )

    with factories.nothing_changes(production_release), pytest.raises(InvalidTransition) as exc:
        factories.decide(production_release, approver)

    assert exc.value.message == "This request expired undecided; a new approval request is needed."


# --- Step-up -------------------------------------------------------------------------------------

STEP_UP_POLICY = """rules:
  - id: production-step-up
    when: environment.risk == "high"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, step_up: true}
"""


@pytest.fixture
def step_up_release(org, service, production, pipeline_bot):
    """A production release under a policy whose only stage needs a fresh one-time code."""
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=STEP_UP_POLICY, actor=None)
    return request_release(service, production, pipeline_bot)


def current_code(device: TOTPDevice) -> str:
    return pyotp.TOTP(base64.b32encode(device.bin_key).decode()).now()


def test_a_step_up_stage_refuses_a_decision_without_a_fresh_code(step_up_release, approver, api):
    TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)

    with factories.nothing_changes(step_up_release):
        missing = post_decision(api(approver), step_up_release)
        wrong = post_decision(api(approver), step_up_release, step_up_code="000000x")

    for response in (missing, wrong):
        error = error_of(response, 403)
        assert (error["code"], error["fields"]) == (
            "step_up_required",
            {"step_up_code": ["A valid one-time code is required."]},
        )
        assert error["message"].startswith("Service approval requires a fresh one-time code")


def test_a_step_up_stage_accepts_a_current_code(step_up_release, approver, api):
    device = TOTPDevice.objects.create(user=approver, name="phone", confirmed=True)

    response = post_decision(api(approver), step_up_release, step_up_code=current_code(device))

    assert response.status_code == 201
    assert response.json()["step_up_method"] == "totp"
    assert factories.approval_snapshot(step_up_release) == {
        "status": "approved",
        "stages": [("service", "approved", 1)],
    }


def test_someone_provisioned_after_their_pipeline_run_cannot_approve_it(
    org, service, staging, pipeline_bot
):
    # The run named gina before the identity provider had provisioned her: unresolved then.
    release = request_release(service, staging, pipeline_bot, triggered_by="Gina")
    assert release.trigger_unresolved
    gina = identity.provision_user(user=User(username="gina"), source="scim:okta")
    factories.grant(gina, Role.APPROVER, service)
    services.reresolve_open_stages()

    assert not release.approval.stages.get().eligible_approvers.filter(pk=gina.pk).exists()
    with factories.nothing_changes(release), pytest.raises(SelfApprovalForbidden):
        factories.decide(release, gina)


OWNERS_DECIDE_STAGING = """
rules:
  - id: staging-owner
    when: environment.risk == "medium"
    require:
      stages:
        - {key: owner, name: Owner approval, approvers: service_owners, count: 1, order: 10}
"""


@pytest.mark.parametrize("path", ["api", "page"])
def test_a_service_owner_without_a_role_decides_an_owner_stage(
    org, service, staging, pipeline_bot, api, client, path
):
    owner = factories.UserFactory(username="olga")
    service.owners.add(owner)
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), actor=None, source=OWNERS_DECIDE_STAGING
    )
    release = request_release(service, staging, pipeline_bot)

    if path == "api":
        response = post_decision(api(owner), release)
        assert response.status_code == 201, response.content
    else:
        client.force_login(owner)
        url = f"/approvals/releases/{release.pk}/decide/"
        response = client.post(url, {"verdict": "approve", "rationale": "Owner review."})
        assert response.status_code == 302
    assert Decision.objects.get(request=release.approval).approver == owner
    assert ApprovalRequest.objects.get(release=release).status == "approved"
