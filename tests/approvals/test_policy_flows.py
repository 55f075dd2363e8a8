"""What the richer policies do to real releases: parallel stages, standard changes approved by
their template, compliance checklists at the gate and on the page, re-planning, SLA escalation
targets, and the explain endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.models import Decision, InfrastructurePlan
from approvals.services.escalation import escalate_overdue_stages
from approvals.services.requests import replan
from governance.authority.models import Role
from governance.exceptions import PermissionDenied
from governance.models import LedgerEntry, Notification, Policy, PolicyProposal
from governance.policy.services import approve_proposal, change_policy, publish_policy
from tests import factories

pytestmark = pytest.mark.django_db

PARALLEL = """\
rules:
  - id: prod
    when: environment.risk == "high"
    require:
      stages:
        - {key: security, approvers: security_approvers, count: 1, order: 10}
        - {key: service, approvers: service_approvers, count: 2, order: 10}
        - {key: cab, approvers: cab, count: 1, order: 20}
  - id: other
    when: environment.risk != "high"
"""


def publish(source: str) -> None:
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=source, actor=None)


@pytest.fixture
def security(db):
    user = factories.UserFactory(username="sam", first_name="Sam")
    factories.grant(user, Role.SECURITY_APPROVER)
    return user


@pytest.fixture
def parallel_release(org, security, service, production, pipeline_bot):
    publish(PARALLEL)
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    return release


def statuses(release) -> dict[str, str]:
    return dict(release.approval.stages.values_list("key", "status"))


# --- Parallel stages -------------------------------------------------------------------------


def test_stages_with_the_same_order_open_together_and_the_next_waits_for_both(
    parallel_release, security, approver, second_approver, cab_member
):
    assert statuses(parallel_release) == {
        "security": "active",
        "service": "active",
        "cab": "waiting",
    }

    factories.decide(parallel_release, security)
    assert statuses(parallel_release) == {
        "security": "approved",
        "service": "active",
        "cab": "waiting",
    }
    factories.decide(parallel_release, approver)
    factories.decide(parallel_release, second_approver)
    assert statuses(parallel_release)["cab"] == "active"

    factories.decide(parallel_release, cab_member)
    parallel_release.approval.refresh_from_db()
    assert parallel_release.approval.status == "approved"


def test_the_gate_shows_parallel_stages_by_their_shared_order(parallel_release, pipeline_bot, api):
    response = api(pipeline_bot).get(
        reverse("approvals-api:release-gate", args=[parallel_release.pk])
    )

    body = response.json()
    assert [(s["key"], s["order"], s["status"]) for s in body["stages"]] == [
        ("security", 10, "active"),
        ("service", 10, "active"),
        ("cab", 20, "waiting"),
    ]
    assert len(body["reasons"]) == 2  # one "waiting for" per open stage


def test_a_rejection_in_one_parallel_stage_closes_the_others(parallel_release, security, approver):
    factories.decide(parallel_release, approver)

    factories.decide(parallel_release, security, verdict="reject", rationale="Leaks a token.")

    parallel_release.approval.refresh_from_db()
    assert parallel_release.approval.status == "rejected"
    assert statuses(parallel_release) == {
        "security": "rejected",
        "service": "cancelled",
        "cab": "cancelled",
    }


def test_someone_eligible_for_both_parallel_stages_counts_in_one_under_dual_control(
    org, security, service, production, pipeline_bot, approver
):
    publish(
        PARALLEL.replace("count: 1, order: 20}", "count: 1, order: 20}\n      dual_control: true")
    )
    factories.grant(approver, Role.SECURITY_APPROVER)
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )

    first = factories.decide(release, approver)

    assert first.stage.key == "security"  # the first open stage, by position, they may decide
    with pytest.raises(Exception, match="Dual control"):
        factories.decide(release, approver)
    assert release.approval.decisions.count() == 1


def test_the_release_page_shows_parallel_stages_side_by_side(parallel_release, approver, client):
    client.force_login(approver)

    page = client.get(
        reverse("approvals:release_detail", args=[parallel_release.pk])
    ).content.decode()

    assert 'data-testid="parallel-stages"' in page
    assert "2 stages open together" in page


# --- Standard changes ------------------------------------------------------------------------

STANDARD = """\
rules:
  - id: prod
    when: environment.risk == "high"
    require:
      stages: [{key: service, approvers: service_approvers, count: 2, order: 10}]
      evidence: [{kind: tests, status: passed}]
  - id: other
    when: environment.risk != "high"
standard_changes:
  - id: copy-refresh
    name: Copy refresh
    owner: alice
    services: [web-frontend]
    environments: [production]
    when: release.version.startsWith("content-")
    evidence:
      - {kind: tests, status: passed, max_failed: 0}
    review_by: 2099-12-31
"""


def standard_body(version: str = "content-1", **change) -> dict:
    return factories.release_body(
        service="web-frontend",
        version=version,
        change={"ref": "CHG0070001", "type": "standard", "template": "copy-refresh", **change},
    )


def test_a_release_inside_its_template_is_approved_by_the_template_not_by_a_person(
    org, low_tier_service, pipeline_bot, api
):
    publish(STANDARD)

    response = api(pipeline_bot).post(reverse("approvals-api:release-list"), standard_body())

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "approved" and body["gate"]["status"] == "approved"
    release = low_tier_service.releases.get()
    assert release.standard_change == "copy-refresh"
    assert release.approval.stages.count() == 0
    assert not Decision.objects.exists()
    entries = LedgerEntry.objects.filter(subject=f"release:{release.pk}").order_by("seq")
    kinds = [(e.kind, e.actor) for e in entries]
    assert ("approval.standard_change", "system") in kinds
    assert ("gate.transition", "system") in kinds
    template = entries.get(kind="approval.standard_change").payload
    assert (template["id"], template["owner"], template["policy"]) == (
        "copy-refresh",
        "alice",
        "default@v2",
    )


def test_a_template_whose_condition_fails_falls_back_to_the_normal_path_and_says_why(
    org, low_tier_service, pipeline_bot, api, approver, client
):
    publish(STANDARD)

    response = api(pipeline_bot).post(reverse("approvals-api:release-list"), standard_body("4.0.0"))

    assert response.json()["status"] == "pending"
    release = low_tier_service.releases.get()
    assert [s.key for s in release.approval.stages.all()] == ["service"]
    note = release.approval.plan["notes"][0]
    assert note.startswith("Standard change 'copy-refresh' does not apply")
    assert 'its condition `release.version.startsWith("content-")` does not hold' in note
    client.force_login(approver)
    page = client.get(reverse("approvals:release_detail", args=[release.pk])).content.decode()
    assert 'data-testid="plan-note"' in page and "does not apply" in page


def test_a_template_named_on_a_normal_change_is_refused(org, low_tier_service, pipeline_bot, api):
    publish(STANDARD)

    with factories.nothing_changes():
        response = api(pipeline_bot).post(
            reverse("approvals-api:release-list"), standard_body(type="normal")
        )

    assert response.status_code == 400
    assert "template" in response.json()["error"]["fields"]["change"]


def test_the_templates_evidence_still_guards_the_gate_after_approval(
    org, low_tier_service, pipeline_bot, api
):
    publish(STANDARD)
    api(pipeline_bot).post(reverse("approvals-api:release-list"), standard_body())
    release = low_tier_service.releases.get()

    services.add_evidence(
        release=release, actor=pipeline_bot, kind="tests", status="passed", summary={"failed": 2}
    )

    gate = api(pipeline_bot).get(reverse("approvals-api:release-gate", args=[release.pk])).json()
    assert gate["status"] == "blocked"
    assert "reports 2 failed; at most 0 allowed" in gate["reasons"][0]


def test_adding_or_changing_a_template_needs_a_second_administrator(org, administrator):
    policy = Policy.objects.get(slug="default")
    publish(STANDARD)  # v2 holds the template

    changed = change_policy(
        policy_obj=policy,
        source=STANDARD.replace("owner: alice", "owner: bob"),
        actor=administrator,
    )
    removed = change_policy(
        policy_obj=policy, source=STANDARD.split("standard_changes:")[0], actor=administrator
    )

    assert isinstance(changed, PolicyProposal)  # nobody alone pre-approves releases
    assert not isinstance(removed, PolicyProposal)  # removing one only tightens


# --- Loosening needs an explicit confirmation --------------------------------------------------


def test_a_loosening_change_waits_for_a_second_administrator_who_must_confirm_it(
    org, administrator
):
    second = factories.UserFactory(username="root2")
    factories.grant(second, Role.ADMINISTRATOR)
    policy = Policy.objects.get(slug="default")
    version = policy.version

    proposal = change_policy(
        policy_obj=policy,
        source=policy.source.replace("count: 2", "count: 1", 1),
        actor=administrator,
        loosening=["Production: Service approval needs 1 approval instead of 2"],
    )

    assert isinstance(proposal, PolicyProposal)
    assert proposal.loosening == ["Production: Service approval needs 1 approval instead of 2"]
    with pytest.raises(PermissionDenied, match="confirm the loosening"):
        approve_proposal(proposal=proposal, actor=second)
    policy.refresh_from_db()
    assert policy.version == version  # nothing published
    approve_proposal(proposal=proposal, actor=second, confirm_loosening=True)
    policy.refresh_from_db()
    assert policy.version == version + 1
    proposal.refresh_from_db()
    assert proposal.loosening_confirmed
    assert LedgerEntry.objects.filter(kind="policy.loosening_confirmed", actor="root2").exists()


# --- Compliance checklists -----------------------------------------------------------------------


@pytest.fixture
def pci_release(org, security, service, production, pipeline_bot):
    service.compliance_tags = ["PCI"]
    service.save()
    release, _ = services.request_approval(
        data=factories.release_input(service, production, triggered_by="dave"), actor=pipeline_bot
    )
    return release


def test_the_gate_names_the_checkpoint_of_each_missing_item(pci_release, pipeline_bot, api):
    gate = (
        api(pipeline_bot).get(reverse("approvals-api:release-gate", args=[pci_release.pk])).json()
    )

    assert gate["status"] == "blocked"
    assert "PCI: Missing required evidence: peer_review evidence" in gate["reasons"][0]
    assert "PCI: Missing required evidence: security_scan evidence" in gate["reasons"][1]


def test_the_release_page_shows_each_checklist_item_met_pending_or_missing(
    pci_release, pipeline_bot, approver, client
):
    services.add_evidence(
        release=pci_release,
        actor=pipeline_bot,
        kind="security_scan",
        status="passed",
        summary={"critical": 0, "high": 0},
    )
    services.add_evidence(
        release=pci_release,
        actor=pipeline_bot,
        kind="peer_review",
        status="passed",
        summary={"url": "https://git.example.com/mr/1", "reviewer": "dave"},
    )
    client.force_login(approver)

    page = client.get(reverse("approvals:release_detail", args=[pci_release.pk])).content.decode()

    assert 'data-checkpoint="PCI"' in page
    assert page.count('data-state="met"') == 1  # the scan
    assert page.count('data-state="pending"') == 1  # the security stage
    assert page.count('data-state="missing"') == 1  # dave reviewed his own release
    assert "reviewed by dave, who requested, triggered or authored this release" in page


def test_sox_checks_hold_for_a_normal_release_and_make_one_person_count_once(
    production_release, approver, second_approver, cab_member, pipeline_bot, api
):
    approval = production_release.approval
    assert approval.dual_control  # SOX: approvers all distinct
    for person in (approver, second_approver, cab_member):
        factories.decide(production_release, person)

    gate = (
        api(pipeline_bot)
        .get(reverse("approvals-api:release-gate", args=[production_release.pk]))
        .json()
    )

    assert gate["status"] == "approved"
    approval.refresh_from_db()
    assert approval.gate_snapshot["checks"] == {"distinct_people": None, "evidence_retained": None}


def test_sox_blocks_a_release_without_evidence_naming_the_checkpoint(
    org, service, production, pipeline_bot, api
):
    release, _ = services.request_approval(
        data=factories.release_input(service, production, evidence=()), actor=pipeline_bot
    )

    gate = api(pipeline_bot).get(reverse("approvals-api:release-gate", args=[release.pk])).json()

    assert "SOX: No evidence is attached to this release, so none is retained." in gate["reasons"]


# --- Re-planning when the context changes ------------------------------------------------------


def submit_plan(release, actor, deletes: int) -> None:
    InfrastructurePlan.objects.create(
        release=release,
        format_version="1.2",
        sha256=factories.digest(),
        summary={"creates": 0, "updates": 0, "deletes": deletes, "replaces": 0, "no_ops": 0},
        submitted_by=actor,
    )


def test_replanning_a_pending_request_adds_the_stage_a_new_context_asks_for(
    org, low_tier_service, staging, pipeline_bot, approver
):
    policy = Policy.objects.get(slug="default")
    publish(
        policy.source.replace(
            "rules:\n",
            "rules:\n  - id: plan-deletes\n    when: plan.deletes > 0\n    require:\n"
            "      stages: [{key: infra, name: Infrastructure review, approvers: cab, "
            "order: 5}]\n",
            1,
        )
    )
    release, _ = services.request_approval(
        data=factories.release_input(low_tier_service, staging), actor=pipeline_bot
    )
    factories.decide(release, approver)
    release.approval.refresh_from_db()
    assert release.approval.status == "approved"

    submit_plan(release, pipeline_bot, deletes=1)
    replan(release, pipeline_bot, reason="Terraform plan submitted")

    release.approval.refresh_from_db()
    assert release.approval.status == "pending"  # approved before; it needs more now
    assert statuses(release) == {"service": "approved", "infra": "active"}
    entry = LedgerEntry.objects.get(kind="approval.replanned")
    assert entry.payload["stages_added"] == ["infra"]
    assert LedgerEntry.objects.filter(
        kind="gate.transition", payload__to="pending", subject=f"release:{release.pk}"
    ).exists()


def test_replanning_with_nothing_new_changes_no_stage(production_release, pipeline_bot):
    before = list(production_release.approval.stages.values_list("key", "required_count", "status"))

    replan(production_release, pipeline_bot, reason="again")

    after = list(production_release.approval.stages.values_list("key", "required_count", "status"))
    assert after == before


# --- SLA escalation target ---------------------------------------------------------------------

SLA = """\
rules:
  - id: prod
    when: environment.risk == "high"
    require:
      stages: [{key: service, approvers: service_approvers, count: 1, order: 10, sla_hours: 8}]
      sla: critical
  - id: other
    when: environment.risk != "high"
slas:
  - id: critical
    description: Critical
    min_approvers: 2
    due_hours: 2
    escalate_hours: 1
    escalate_to: platform
"""


def test_an_sla_escalation_tells_its_target_team_without_giving_it_authority(
    org, service, production, pipeline_bot
):
    publish(SLA)
    platform = factories.TeamFactory(slug="platform", name="Platform")
    oncall = factories.UserFactory(username="olivia")
    platform.members.add(oncall)
    release, _ = services.request_approval(
        data=factories.release_input(service, production), actor=pipeline_bot
    )
    stage = release.approval.stages.get()
    assert (stage.required_count, stage.sla_hours) == (2, 2)
    assert release.approval.plan["slas"][0]["id"] == "critical"

    escalated = escalate_overdue_stages(now=timezone.now() + timedelta(hours=1, minutes=1))

    assert escalated == 1
    told = Notification.objects.filter(recipient=oncall)
    assert told.count() == 1 and "escalated" in told.get().subject.lower()
    stage.refresh_from_db()
    assert not stage.eligible_approvers.filter(pk=oncall.pk).exists()


# --- Explain -----------------------------------------------------------------------------------


def test_explain_gives_each_requirement_its_rules_version_and_values(
    production_release, pipeline_bot, api
):
    response = api(pipeline_bot).get(
        reverse("approvals-api:release-explain", args=[production_release.pk])
    )

    assert response.status_code == 200
    body = response.json()
    assert body["policy"] == "default@v1"
    service = next(r for r in body["requirements"] if r["key"] == "service")
    assert service["rules"] == [
        {
            "id": "production-dual-control",
            "version": 1,
            "when": 'environment.risk == "high" && change.type != "emergency"',
            "values": {"environment.risk": "high", "change.type": "normal"},
        }
    ]
    flags = {r["key"]: [rule["id"] for rule in r["rules"]] for r in body["requirements"]}
    assert flags["dual_control"] == ["production-dual-control"]
    assert flags["distinct_people"] == ["sox-checkpoint"]
    assert body["checkpoints"]["SOX"][0] == {"kind": "check", "key": "distinct_people"}


@pytest.mark.parametrize(
    ("who", "code"),
    [(None, 401), ("outsider", 404), ("other_service_approver", 404), ("approver", 200)],
)
def test_explain_is_for_those_who_see_the_release(
    production_release, api, request, other_service_approver, who, code
):
    user = request.getfixturevalue(who) if who else None

    response = api(user).get(reverse("approvals-api:release-explain", args=[production_release.pk]))

    assert response.status_code == code


# --- Loosening where no release went lately --------------------------------------------------


def test_a_loosening_on_a_regulated_environment_without_recent_releases_is_still_found(org):
    from approvals.policy_editor.simulation import simulate

    published = Policy.objects.get(slug="default").source
    looser = published.replace("count: 2", "count: 1", 1)  # production's dual control
    tighter = published.replace("count: 2", "count: 3", 1)

    loosened = simulate(draft=looser, published=published)
    tightened = simulate(draft=tighter, published=published)

    assert loosened.simulated == 0  # nothing was requested in the window
    assert any(
        line.startswith("Production, payments-api (normal, standard changes): ") and "2 → 1" in line
        for line in loosened.loosening()
    ), loosened.loosening()
    assert tightened.loosening() == []


def test_such_a_loosening_goes_to_a_second_administrator(org, administrator, client):
    published = Policy.objects.get(slug="default")
    client.force_login(administrator)

    response = client.post(
        reverse("policy_editor:policy_propose", args=["default"]),
        {
            "source": published.source.replace("count: 2", "count: 1", 1),
            "comment": "Fewer approvers",
            "days": "30",
        },
    )

    assert response.status_code in (200, 302)
    proposal = PolicyProposal.objects.get()
    assert proposal.loosening and "payments-api" in proposal.loosening[0]
    published.refresh_from_db()
    assert published.version == 1
