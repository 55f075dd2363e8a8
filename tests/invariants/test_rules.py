"""Example tests of the rule modules' edges that no other test pinned down.

Mutation testing (`make mutate`, scores in docs/benchmarks.md) showed each of these rules could
be changed without any test noticing; every test here names the rule it holds.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import services
from approvals.authority import decision_capacity
from approvals.exceptions import InvalidRequest, InvalidTransition, NotEligible, StepUpRequired
from approvals.models import Decision, Release
from governance.authority.services import create_delegation, grant_role, revoke_role
from governance.models import LedgerEntry, Policy, Role, RoleAssignment
from governance.policy.services import publish_policy
from tests import factories

pytestmark = pytest.mark.django_db

STAGING_POLICY = """
rules:
  - id: staging
    when: environment.risk == "medium"
    require:
      stages:
        - {{key: service, approvers: service_approvers, count: 1, order: 10{teams}}}
"""


def use_staging_policy(teams: str = "") -> None:
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"),
        actor=None,
        source=STAGING_POLICY.format(teams=f", teams: {teams}" if teams else ""),
    )


def lend(delegator, delegate, service=None):
    now = timezone.now()
    return create_delegation(
        delegator=delegator,
        delegate=delegate,
        service=service,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=24),
        reason="away",
        actor=delegator,
    )


def request(service, environment, bot) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment), actor=bot
    )
    return release


@pytest.fixture
def frank(db):
    return factories.UserFactory(username="frank")


# --- Delegation (approvals/authority.py) ---------------------------------------------------------


def test_a_delegation_scoped_to_the_service_lets_the_delegate_decide_there(
    org, staging, service, approver, frank, pipeline_bot
):
    lend(approver, frank, service=service)
    release = request(service, staging, pipeline_bot)

    decision = factories.decide(release, frank)

    assert (decision.approver, decision.on_behalf_of) == (frank, approver)


def test_a_delegator_who_lost_the_authority_lends_nothing(
    org, staging, service, approver, frank, pipeline_bot
):
    lend(approver, frank)
    release = request(service, staging, pipeline_bot)
    for grant in RoleAssignment.objects.filter(user=approver, role=Role.APPROVER):
        revoke_role(assignment=grant, reason="moved team", actor=None)

    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, frank)


def test_an_ineligible_delegator_does_not_hide_an_eligible_one(
    org, staging, service, approver, frank, pipeline_bot
):
    # aaron sorts before alice and approves another service only: frank still acts for alice.
    aaron = factories.UserFactory(username="aaron")
    factories.grant(aaron, Role.APPROVER, factories.ServiceFactory(slug="elsewhere"))
    lend(aaron, frank)
    lend(approver, frank)
    release = request(service, staging, pipeline_bot)

    decision = factories.decide(release, frank)

    assert decision.on_behalf_of == approver


@pytest.fixture
def shared(org, service, approver, team):
    """payments-api owned by Payments (alice, primary) and by Ledger (lena, no role)."""
    ledger = factories.TeamFactory(slug="ledger", name="Ledger")
    team.members.add(approver)
    lena = factories.UserFactory(username="lena")
    ledger.members.add(lena)
    service.co_owning_teams.add(ledger)
    return service


def test_under_the_primary_rule_a_delegate_from_a_co_owning_team_cannot_act(
    shared, staging, approver, pipeline_bot
):
    use_staging_policy("primary")
    lena = factories.UserFactory(username="lena")
    lend(approver, lena)
    release = request(shared, staging, pipeline_bot)

    with factories.nothing_changes(release), pytest.raises(NotEligible, match="owning teams"):
        factories.decide(release, lena)


def test_under_the_any_rule_a_delegate_from_a_co_owning_team_acts(
    shared, staging, approver, pipeline_bot
):
    use_staging_policy("any")
    lena = factories.UserFactory(username="lena")
    lend(approver, lena)
    release = request(shared, staging, pipeline_bot)

    decision = factories.decide(release, lena)

    assert (decision.approver, decision.on_behalf_of) == (lena, approver)
    assert Decision.objects.filter(request=release.approval).count() == 1


def test_under_dual_control_a_delegate_who_decided_a_stage_cannot_act_in_another(
    production_release, approver, second_approver, cab_member
):
    factories.decide(production_release, approver)
    factories.decide(production_release, second_approver)  # the service stage is done
    lend(cab_member, second_approver)
    message = (
        "Dual control: you or carol already decided another stage of this request; "
        "one person counts in one stage only."
    )

    with (
        factories.nothing_changes(production_release),
        pytest.raises(NotEligible) as refused,
    ):
        factories.decide(production_release, second_approver)

    assert refused.value.message == message


# --- Who may decide (approvals/authority.py) ------------------------------------------------------


def test_capacity_is_judged_at_the_moment_asked(production_release, approver):
    approval = production_release.approval
    later = approval.expires_at + timedelta(hours=1)

    assert decision_capacity(production_release, approval, approver).stage is not None
    capacity = decision_capacity(production_release, approval, approver, later)

    assert capacity.blocker == "This request expired undecided; a new approval request is needed."


def test_a_pending_request_without_an_open_stage_takes_no_decision(
    org, staging, service, approver, pipeline_bot
):
    # A policy with nothing for staging: the request stays pending, blocked, with no stage.
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"),
        actor=None,
        source=STAGING_POLICY.format(teams="").replace('"medium"', '"high"'),
    )
    release = request(service, staging, pipeline_bot)
    assert not release.approval.stages.exists()

    with factories.nothing_changes(release), pytest.raises(NotEligible) as refused:
        factories.decide(release, approver)

    assert refused.value.message == "No stage is open for decisions."


def test_a_grant_narrowed_to_another_environment_stops_counting(
    org, production, staging, service, pipeline_bot, frank
):
    factories.grant(frank, Role.APPROVER, service)
    release = request(service, production, pipeline_bot)  # frank is on the approver list
    for grant in RoleAssignment.objects.filter(user=frank):
        revoke_role(assignment=grant, reason="staging only from now on", actor=None)
    factories.grant_scoped(frank, Role.APPROVER, service=service, environment=staging)

    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, frank)


# --- Decisions (approvals/services/decisions.py) -------------------------------------------------

THREE_APPROVERS = """
rules:
  - id: staging
    when: environment.risk == "medium"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 3,
           order: 10}
"""


def test_a_decision_at_the_moment_the_request_expires_is_too_late(
    production_release, approver, monkeypatch
):
    expiry = production_release.approval.expires_at
    monkeypatch.setattr("django.utils.timezone.now", lambda: expiry)

    with factories.nothing_changes(production_release), pytest.raises(InvalidTransition):
        factories.decide(production_release, approver)


def test_revoking_needs_a_reason(production_release, approver):
    factories.decide(production_release, approver)

    for reason in ("  ", None):
        with (
            factories.nothing_changes(production_release),
            pytest.raises(InvalidRequest) as refused,
        ):
            services.revoke_approval(release=production_release, actor=approver, reason=reason)

    assert refused.value.message == "A reason is required to revoke an approval."
    assert refused.value.fields == {"reason": ["Required."]}


def test_an_approval_on_another_release_is_not_taken_back(
    org, production_release, service, production, approver, pipeline_bot
):
    factories.decide(production_release, approver)
    other = request(service, production, pipeline_bot)

    with factories.nothing_changes(production_release), pytest.raises(InvalidTransition) as no:
        services.revoke_approval(release=other, actor=approver, reason="wrong one")

    assert no.value.message == (
        "You have no approval on a stage that is still open: an approval counts for good "
        "once its stage is complete or the request is closed."
    )


def test_revoking_leaves_the_other_approvals_counted_and_is_ledgered(
    org, staging, service, approver, second_approver, frank, pipeline_bot
):
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), actor=None, source=THREE_APPROVERS
    )
    lend(second_approver, frank)
    release = request(service, staging, pipeline_bot)
    factories.decide(release, approver)
    factories.decide(release, frank)  # for bob

    services.revoke_approval(release=release, actor=frank, reason="Second thoughts")

    stage = release.approval.stages.get()
    assert (stage.status, stage.approval_count) == ("active", 1)
    entry = LedgerEntry.objects.filter(kind="decision.revoked").get()
    assert entry.payload == {"stage": "service", "reason": "Second thoughts", "on_behalf_of": "bob"}


def test_a_stage_completes_at_the_decision_that_completes_it(
    production_release, approver, second_approver
):
    factories.decide(production_release, approver)
    stage = production_release.approval.stages.get(key="service")
    assert (stage.status, stage.completed_at) == ("active", None)

    last = factories.decide(production_release, second_approver)

    stage.refresh_from_db()
    assert (stage.status, stage.completed_at) == ("approved", last.created_at)
    assert last.channel == "ui"  # what a caller that names no channel gets


def test_the_approval_that_completes_the_request_is_ledgered_as_its_approvers(
    org, staging, service, approver, pipeline_bot
):
    release = request(service, staging, pipeline_bot)

    factories.decide(release, approver)

    last = LedgerEntry.objects.filter(kind="gate.transition").order_by("seq").last()
    assert (last.actor, last.payload["to"]) == ("alice", "approved")


def test_a_rejection_closes_its_stage_when_made_and_names_the_rejecter(
    production_release, approver
):
    decision = factories.decide(production_release, approver, verdict="reject")

    stage = production_release.approval.stages.get(key="service")
    assert (stage.status, stage.completed_at) == ("rejected", decision.created_at)
    last = LedgerEntry.objects.filter(kind="gate.transition").order_by("seq").last()
    assert (last.actor, last.payload["to"]) == ("alice", "rejected")


STEP_UP_STAGING = """
rules:
  - id: staging
    when: environment.risk == "medium"
    require:
      stages:
        - {key: service, name: Service approval, approvers: service_approvers, count: 1,
           order: 10, step_up: true}
"""


def test_a_step_up_stage_says_how_to_get_a_code(org, staging, service, approver, pipeline_bot):
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), actor=None, source=STEP_UP_STAGING
    )
    release = request(service, staging, pipeline_bot)

    with factories.nothing_changes(release), pytest.raises(StepUpRequired) as refused:
        factories.decide(release, approver)

    assert refused.value.message == (
        "Service approval requires a fresh one-time code from your authenticator app. "
        "Enrol one on your profile page if you have none."
    )


# --- An escalated stage: the CAB's authority, as it stands now ----------------------------------


def escalate(release: Release) -> None:
    stage = release.approval.stages.get(status="active")
    services.escalate_overdue_stages(now=stage.escalate_at + timedelta(minutes=1))


def test_once_escalated_a_listed_approver_who_lost_the_role_still_may_not_decide(
    org, service, staging, approver, pipeline_bot
):
    """Escalation lets the CAB decide too; it gives nothing to a listed approver whose own
    authority is gone and who holds no CAB role."""
    release = request(service, staging, pipeline_bot)
    escalate(release)
    revoke_role(
        assignment=RoleAssignment.objects.get(user=approver, service=service),
        reason="moved team",
        actor=None,
    )
    assert release.approval.stages.get(status="active").eligible_approvers.filter(pk=approver.pk)

    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, approver)


def test_a_cab_member_whose_role_now_covers_other_environments_only_may_not_decide(
    org, service, staging, production, cab_member, pipeline_bot
):
    """Listed on the escalated stage, carol's CAB role is then limited to production: the
    staging release's stage is no longer hers to decide."""
    release = request(service, staging, pipeline_bot)
    escalate(release)
    revoke_role(
        assignment=RoleAssignment.objects.get(user=cab_member, role=Role.CAB_MEMBER),
        reason="production only",
        actor=None,
    )
    grant_role(
        user=cab_member,
        role=Role.CAB_MEMBER,
        service=None,
        environment=production,
        reason="production only",
        actor=None,
    )
    assert release.approval.stages.get(status="active").eligible_approvers.filter(pk=cab_member.pk)

    with factories.nothing_changes(release), pytest.raises(NotEligible):
        factories.decide(release, cab_member)


# --- Parallel stages: a person's next decision goes to the next open stage they may decide -----

TWO_OPEN_STAGES = """
rules:
  - id: parallel
    when: environment.risk == "medium"
    require:
      stages:
        - {key: first, name: First review, approvers: service_approvers, count: 2, order: 10}
        - {key: second, name: Second review, approvers: service_approvers, count: 1, order: 10}
"""


@pytest.fixture
def two_open_stages(org, service, staging, pipeline_bot) -> Release:
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), actor=None, source=TWO_OPEN_STAGES
    )
    return request(service, staging, pipeline_bot)


def test_having_decided_one_open_stage_a_person_decides_the_other(two_open_stages, approver):
    first = factories.decide(two_open_stages, approver)
    second = factories.decide(two_open_stages, approver)

    assert (first.stage.key, second.stage.key) == ("first", "second")


def test_a_delegate_s_next_decision_for_the_same_person_goes_to_the_other_open_stage(
    two_open_stages, approver, service
):
    frank = factories.UserFactory(username="frank")
    lend(approver, frank, service=service)

    first = factories.decide(two_open_stages, frank)
    second = factories.decide(two_open_stages, frank)

    assert [(d.stage.key, d.on_behalf_of) for d in (first, second)] == [
        ("first", approver),
        ("second", approver),
    ]


def test_someone_eligible_for_no_open_stage_is_told_every_stage_open(two_open_stages):
    outsider = factories.UserFactory(username="olga")

    with factories.nothing_changes(two_open_stages), pytest.raises(NotEligible) as refused:
        factories.decide(two_open_stages, outsider)

    assert (
        str(refused.value) == "You are not an eligible approver for First review or Second review."
    )
