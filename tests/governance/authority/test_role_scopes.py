"""Role scopes: one service, a team's services, everything; optionally one environment only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals import services
from approvals.exceptions import NotEligible
from approvals.models import Release
from governance.authority.selectors import has_stage_authority
from governance.authority.services import grant_role, revoke_role, sync_team_grants
from governance.exceptions import PermissionDenied
from governance.models import Role, RoleAssignment, Service, User
from tests import factories

pytestmark = pytest.mark.django_db


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # drop Django's per-object permission caches


def release_to(service, environment, bot) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment), actor=bot
    )
    return release


def test_an_approver_limited_to_production_approves_nothing_else(
    org, service, production, staging, pipeline_bot
):
    nina = factories.UserFactory(username="nina")
    factories.grant_scoped(nina, Role.APPROVER, service=service, environment=production)
    to_production = release_to(service, production, pipeline_bot)
    to_staging = release_to(service, staging, pipeline_bot)

    assert to_production.approval.stages.filter(eligible_approvers=nina).exists()
    assert not to_staging.approval.stages.filter(eligible_approvers=nina).exists()
    assert has_stage_authority(nina, service, "service_approvers", production)
    assert not has_stage_authority(nina, service, "service_approvers", staging)
    with factories.nothing_changes(to_staging), pytest.raises(NotEligible):
        factories.decide(to_staging, nina)
    factories.decide(to_production, nina)


def test_a_team_wide_grant_covers_the_teams_services_now_and_later(
    org, team, service, staging, pipeline_bot
):
    nina = factories.UserFactory(username="nina")
    assignment = factories.grant_scoped(nina, Role.APPROVER, team=team)
    assert assignment.scope_label == "Payments's services"
    assert fresh(nina).has_perm("governance.approve_release", service)

    newcomer = factories.ServiceFactory(slug="payouts", team=team)
    sync_team_grants(team)
    assert fresh(nina).has_perm("governance.approve_release", newcomer)
    release = release_to(newcomer, staging, pipeline_bot)
    assert release.approval.stages.filter(eligible_approvers=nina).exists()

    revoke_role(assignment=assignment, reason="Moved on", actor=None)
    nina = fresh(nina)
    assert not nina.has_perm("governance.approve_release", service)
    assert not nina.has_perm("governance.approve_release", newcomer)


def test_moving_a_service_to_another_team_moves_team_wide_authority(client, org, team, service):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    nina = factories.UserFactory(username="nina")
    factories.grant_scoped(nina, Role.APPROVER, team=team)
    other = factories.TeamFactory(slug="web", name="Web")
    client.force_login(admin)
    form = {
        "name": service.name,
        "slug": service.slug,
        "description": "",
        "tier": 1,
        "team": other.pk,
        "vendor": "",
        "compliance_tags": ["SOX"],
    }
    assert (
        client.post(
            reverse("governance:catalogue_edit", args=["services", service.pk]), form
        ).status_code
        == 302
    )
    assert not fresh(nina).has_perm(
        "governance.approve_release", Service.objects.get(pk=service.pk)
    )


def test_a_release_manager_limited_to_staging_cannot_request_production(
    org, service, staging, production, api
):
    pipeline = factories.UserFactory(username="stage-bot", is_service_account=True)
    factories.grant_scoped(pipeline, Role.RELEASE_MANAGER, service=service, environment=staging)
    client = api(pipeline)
    refused = client.post("/api/v1/releases/", factories.release_body(environment="production"))
    assert refused.status_code == 400
    assert "may not request releases of payments-api to production" in str(refused.json())
    assert (
        client.post("/api/v1/releases/", factories.release_body(environment="staging")).status_code
        == 201
    )


def test_a_grant_is_on_a_service_or_a_team_not_both(org, team, service):
    with pytest.raises(PermissionDenied, match="not both"):
        grant_role(
            user=factories.UserFactory(username="nina"),
            role=Role.APPROVER,
            service=service,
            team=team,
            reason="x",
            actor=None,
        )
    assert not RoleAssignment.objects.filter(user__username="nina").exists()


def test_the_roles_page_grants_a_team_wide_production_only_role(client, org, team, production):
    admin = factories.UserFactory(username="ada")
    factories.grant(admin, Role.ADMINISTRATOR)
    nina = factories.UserFactory(username="nina")
    client.force_login(admin)
    response = client.post(
        reverse("governance:role_list"),
        {
            "user": nina.pk,
            "role": Role.APPROVER,
            "team": team.pk,
            "environment": production.pk,
            "reason": "Production on-call for payments",
        },
    )
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(user=nina)
    assert assignment.scope_label == "Payments's services, Production only"
