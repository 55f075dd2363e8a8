"""The policy editor: administrators draft a policy, see it validated, diffed and simulated
against past releases, and propose it; loosening on regulated environments always meets a
second administrator, who must confirm it explicitly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import services
from approvals.models import Release
from approvals.policy_editor import simulation
from benchmarks.policy import BUILT_IN, measure_policy
from governance.models import LedgerEntry, Policy, PolicyProposal, PolicyVersion, Role
from governance.policy import engine
from governance.policy.engine import Plan, StageRequirement
from governance.policy.evidence import EvidenceRequirement
from governance.policy.services import publish_policy
from tests import factories
from tests.test_form_accessibility import assert_errors_announced

pytestmark = pytest.mark.django_db

# The policy the history was planned with: production needs two service approvers, dual
# control, passing tests and a 72-hour validity; staging one approver; development nothing.
POLICY = """\
rules:
  - id: dev-self-service
    when: environment.risk == "low"
    require:
      stages: []
  - id: staging-one-approver
    when: environment.risk == "medium"
    require:
      stages:
        - key: service
          name: Service approval
          approvers: service_approvers
          count: 1
  - id: production-dual-control
    description: Production needs two distinct approvers.
    when: >
      environment.risk == "high"
      && change.type != "emergency"
    require:
      stages:
        - key: service
          name: Service approval
          approvers: service_approvers
          count: 2
      approval_valid_hours: 72
      dual_control: true
      evidence:
        - kind: tests
          status: passed
          max_failed: 0
"""
PRODUCTION_THREE = POLICY.replace("count: 2", "count: 3")
PRODUCTION_ONE = POLICY.replace("count: 2", "count: 1")
EDITOR = "/policies/editor/"
EDIT = "/policies/editor/default/"
PROPOSE = "/policies/editor/default/propose/"
VALIDATE = "/policies/editor/validate/"


@pytest.fixture
def published(policy) -> Policy:
    current = Policy.objects.get(slug="default")
    publish_policy(policy_obj=current, source=POLICY, actor=None, comment="test policy")
    current.refresh_from_db()
    return current


@pytest.fixture
def second_administrator(db):
    user = factories.UserFactory(username="grace", first_name="Grace")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


def request(service, environment, bot, *, days_ago: int = 1) -> Release:
    release, _ = services.request_approval(
        data=factories.release_input(service, environment, triggered_by="dave"), actor=bot
    )
    Release.objects.filter(pk=release.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    return release


@pytest.fixture
def history(org, published, service, low_tier_service, production, staging, dev, pipeline_bot):
    """Six releases in the last 30 days (three to production), one to production 40 days ago."""
    return {
        "production": [
            request(service, production, pipeline_bot, days_ago=1),
            request(service, production, pipeline_bot, days_ago=5),
            request(low_tier_service, production, pipeline_bot, days_ago=20),
        ],
        "staging": [
            request(service, staging, pipeline_bot, days_ago=2),
            request(low_tier_service, staging, pipeline_bot, days_ago=3),
        ],
        "dev": [request(low_tier_service, dev, pipeline_bot, days_ago=4)],
        "old": [request(service, production, pipeline_bot, days_ago=40)],
    }


def signed_in(client, user):
    client.force_login(user)
    return client


def state() -> tuple:
    policy = Policy.objects.get(slug="default")
    return (
        policy.version,
        policy.source,
        PolicyVersion.objects.count(),
        list(PolicyProposal.objects.values_list("pk", "outcome", "loosening_confirmed")),
        LedgerEntry.objects.count(),
    )


# --- who may use it -----------------------------------------------------------------------


ENDPOINTS = [
    ("get", EDITOR, {}),
    ("get", EDIT, {}),
    ("post", EDIT, {"source": POLICY, "days": "30"}),
    ("post", VALIDATE, {"source": POLICY}),
    ("post", PROPOSE, {"source": PRODUCTION_THREE, "days": "30", "comment": "three"}),
]


@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_anonymous_visitors_are_sent_to_sign_in(client, published, method, url, data):
    before = state()

    response = getattr(client, method)(url, data)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert state() == before


@pytest.mark.parametrize("persona", ["outsider", "approver", "auditor", "cab_member"])
@pytest.mark.parametrize(("method", "url", "data"), ENDPOINTS)
def test_people_who_do_not_administer_signoff_are_refused(
    client, org, published, request, persona, method, url, data
):
    signed_in(client, request.getfixturevalue(persona))
    before = state()

    response = getattr(client, method)(url, data)

    assert response.status_code == 403
    assert state() == before


@pytest.mark.parametrize(
    ("method", "url", "data", "status"),
    [(m, u, d, 302 if u in (EDITOR, PROPOSE) else 200) for m, u, d in ENDPOINTS],
)
def test_administrators_use_the_editor(client, published, administrator, method, url, data, status):
    response = getattr(signed_in(client, administrator), method)(url, data)
    assert response.status_code == status


def test_the_editor_opens_on_the_published_source_of_the_active_policy(
    client, published, administrator
):
    signed_in(client, administrator)

    assert client.get(EDITOR)["Location"] == EDIT
    response = client.get(EDIT)

    assert response.context["form"]["source"].value() == POLICY
    page = response.content.decode()
    assert 'hx-post="/policies/editor/validate/"' in page
    assert 'hx-trigger="keyup changed delay:500ms"' in page


def test_an_unknown_policy_is_not_found(client, published, administrator):
    assert signed_in(client, administrator).get("/policies/editor/nope/").status_code == 404


# --- validation as you type ------------------------------------------------------------------


def test_a_valid_draft_validates_with_its_rule_count(client, published, administrator):
    response = signed_in(client, administrator).post(VALIDATE, {"source": POLICY})

    assert response.status_code == 200
    assert "Valid: 3 rules." in response.content.decode()


def test_an_error_in_a_folded_condition_names_its_line_and_column(client, published, administrator):
    # Line 18 is `      && change.type #= "emergency"`: the `#` is at column 22.
    broken = POLICY.replace('&& change.type != "emergency"', '&& change.type #= "emergency"')

    response = signed_in(client, administrator).post(VALIDATE, {"source": broken})

    assert response.status_code == 422
    body = response.content.decode()
    assert "<strong>Line 18, column 22:</strong>" in body
    assert "token recognition error at: &#x27;#&#x27;" in body


def test_an_empty_draft_is_refused_with_a_message(client, published, administrator):
    response = signed_in(client, administrator).post(VALIDATE, {"source": ""})

    assert response.status_code == 422
    assert "The policy cannot be empty." in response.content.decode()


# --- diff and simulation ----------------------------------------------------------------------


def test_the_diff_colours_removed_and_added_lines(client, published, administrator):
    response = signed_in(client, administrator).post(
        EDIT, {"source": PRODUCTION_THREE, "days": "30"}
    )

    diff = [(line.css.split()[0], line.text) for line in response.context["diff"]]
    assert ("diff-removed", "-          count: 2") in diff
    assert ("diff-added", "+          count: 3") in diff
    assert [kind for kind, _ in diff].count("diff-added") == 1
    assert [kind for kind, _ in diff].count("diff-removed") == 1
    assert 'class="d-block diff-added text-success-emphasis bg-success-subtle"' in (
        response.content.decode()
    )


def test_raising_productions_count_changes_exactly_the_production_releases(
    client, history, administrator
):
    response = signed_in(client, administrator).post(
        EDIT, {"source": PRODUCTION_THREE, "days": "30"}
    )

    result = response.context["simulation"]
    assert result.simulated == 6 and not result.capped
    assert {c.release.pk for c in result.changes} == {r.pk for r in history["production"]}
    assert all(
        [d.text for d in c.differences] == ["stage 'Service approval': 2 → 3 approvals"]
        for c in result.changes
    )
    assert (result.tightened, result.loosened, result.newly_blocked) == (3, 0, 0)
    assert result.loosening() == []
    page = response.content.decode()
    assert 'data-testid="loosening"' not in page
    assert page.count('data-testid="changed-release"') == 3


def test_the_window_decides_which_releases_are_simulated(client, history, administrator):
    response = signed_in(client, administrator).post(
        EDIT, {"source": PRODUCTION_THREE, "days": "60"}
    )

    result = response.context["simulation"]
    assert result.simulated == 7
    assert history["old"][0].pk in {c.release.pk for c in result.changes}


def test_a_draft_that_drops_development_blocks_its_releases(client, history, administrator):
    draft = POLICY.replace('environment.risk == "low"', 'environment.risk == "none"')

    result = signed_in(client, administrator).post(EDIT, {"source": draft, "days": "30"})

    simulated = result.context["simulation"]
    assert [c.release.pk for c in simulated.changes] == [history["dev"][0].pk]
    assert simulated.newly_blocked == 1 and simulated.tightened == 1
    assert simulated.changes[0].differences[0].text.startswith("now blocked: No policy rule")


def test_lowering_productions_count_is_shown_as_loosening(client, history, administrator):
    response = signed_in(client, administrator).post(EDIT, {"source": PRODUCTION_ONE, "days": "30"})

    result = response.context["simulation"]
    assert (result.tightened, result.loosened) == (0, 3)
    assert result.loosening() == [
        "Production: stage 'Service approval': 2 → 1 approvals (3 releases)"
    ]
    page = response.content.decode()
    assert 'data-testid="loosening"' in page
    assert "This change loosens control on regulated environments." in page


def test_loosening_elsewhere_than_regulated_environments_needs_no_confirmation(
    client, history, administrator
):
    # Published: staging asks for step-up; the draft (POLICY) no longer does.
    stricter_staging = POLICY.replace(
        "approvers: service_approvers\n          count: 1\n",
        "approvers: service_approvers\n          count: 1\n          step_up: true\n",
    )
    publish_policy(
        policy_obj=Policy.objects.get(slug="default"), source=stricter_staging, actor=None
    )

    response = signed_in(client, administrator).post(EDIT, {"source": POLICY, "days": "30"})

    result = response.context["simulation"]
    assert result.loosened == 2  # both staging releases lose step-up...
    assert result.loosening() == []  # ...but staging is not regulated


def test_the_simulation_reads_a_fixed_number_of_queries_plus_incidents_per_service(
    client, history, administrator, service, production, pipeline_bot
):
    signed_in(client, administrator)
    data = {"source": PRODUCTION_THREE, "days": "30"}
    with CaptureQueriesContext(connection) as before:
        client.post(EDIT, data)
    for _ in range(4):
        request(service, production, pipeline_bot)
    with CaptureQueriesContext(connection) as after:
        client.post(EDIT, data)

    # Incidents once per service, everything else loaded up front: more releases of a
    # service the simulation already read cost nothing.
    assert len(after) == len(before)


@pytest.mark.parametrize(
    ("days", "message"),
    [("0", "Simulate at least 1 day."), ("366", "Simulate at most 365 days."), ("x", "number")],
)
def test_a_bad_window_is_refused_with_a_message(client, published, administrator, days, message):
    response = signed_in(client, administrator).post(EDIT, {"source": POLICY, "days": days})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert "simulation" not in response.context


def test_the_simulation_is_capped_at_the_latest_releases(history, monkeypatch):
    monkeypatch.setattr(simulation, "MAX_RELEASES", 4)

    result = simulation.simulate(draft=PRODUCTION_THREE, published=POLICY, days=30)

    assert result.simulated == 4 and result.capped
    # The latest four: production a day ago changes; staging 2 and 3, dev 4 days ago do not.
    assert [c.release.pk for c in result.changes] == [history["production"][0].pk]


# --- comparing plans ----------------------------------------------------------------------------


def stage(
    count: int = 2, *, step_up: bool = True, approvers: str = "service_approvers", teams="each"
):
    return StageRequirement("service", "Service", approvers, count, 10, step_up, None, teams=teams)


def required_tests(max_failed: int | None = 0, **thresholds) -> EvidenceRequirement:
    """Strict unless told otherwise: 100 passed, none failed, reviewed by someone else, no
    critical finding and two high ones at most."""
    values = {
        "min_passed": 100,
        "max_findings": {"critical": 0, "high": 2},
        "distinct_reviewer": True,
        **thresholds,
    }
    return EvidenceRequirement("tests", "passed", max_failed, **values)


def strict() -> Plan:
    return Plan(
        stages=[stage()],
        evidence=[required_tests()],
        approval_valid_hours=24,
        dual_control=True,
        matched_rules=[{"id": "x"}],
    )


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"stages": []}, "removes stage 'Service'"),
        ({"stages": [stage(1)]}, "stage 'Service': 2 → 1 approvals"),
        ({"stages": [stage(step_up=False)]}, "stage 'Service': step-up no longer required"),
        (
            {"stages": [stage(teams="any")]},
            "stage 'Service': owning teams one approval from each owning team → any owning team",
        ),
        ({"dual_control": False}, "dual control dropped"),
        (
            {"evidence": []},
            "no longer requires " + required_tests().describe(),
        ),
        ({"evidence": [required_tests(2)]}, "evidence 'tests': at most 0 failed → 2"),
        ({"evidence": [required_tests(None)]}, "evidence 'tests': at most 0 failed → any number"),
        (
            {"evidence": [required_tests(min_passed=50)]},
            "evidence 'tests': at least 100 passed → 50",
        ),
        (
            {"evidence": [required_tests(max_findings={"critical": 0, "high": 3})]},
            "evidence 'tests': at most 2 high findings → 3",
        ),
        (
            {"evidence": [required_tests(distinct_reviewer=False)]},
            "evidence 'tests': distinct reviewer no longer required",
        ),
        ({"approval_valid_hours": 48}, "approval valid for 24 h → 48 h"),
        ({"approval_valid_hours": None}, "approval valid for 24 h → no limit"),
    ],
)
def test_each_kind_of_loosening_is_named(change, text):
    looser = strict()
    for name, value in change.items():
        setattr(looser, name, value)

    assert [(d.text, d.direction) for d in simulation.compare(strict(), looser)] == [
        (text, "looser")
    ]
    assert [d.direction for d in simulation.compare(looser, strict())] == ["tighter"]


def test_unblocking_a_blocked_release_is_loosening():
    blocked = Plan(errors=["No policy rule applies to this release."])

    (difference,) = simulation.compare(blocked, strict())

    assert difference.direction == "looser"
    assert difference.text == "no longer blocked (was: No policy rule applies to this release.)"


def test_other_approvers_are_a_change_but_neither_tighter_nor_looser():
    other = strict()
    other.stages = [stage(approvers="cab")]

    (difference,) = simulation.compare(strict(), other)

    assert difference.direction == ""
    assert difference.text == "stage 'Service': approvers approvers of the service → CAB members"


# --- proposing ----------------------------------------------------------------------------------


def test_a_tightening_draft_is_published_by_an_administrator_who_approves_nothing(
    client, history, administrator
):
    response = signed_in(client, administrator).post(
        PROPOSE, {"source": PRODUCTION_THREE, "days": "30", "comment": "three for production"}
    )

    assert response.status_code == 302 and response["Location"] == "/governance/policies/"
    current = Policy.objects.get(slug="default")
    assert current.version == 3 and current.source == PRODUCTION_THREE
    assert current.versions.first().comment == "three for production"
    assert PolicyProposal.objects.count() == 0


def test_a_loosening_draft_goes_to_a_second_administrator_even_from_one_who_approves_nothing(
    client, history, administrator
):
    response = signed_in(client, administrator).post(
        PROPOSE, {"source": PRODUCTION_ONE, "days": "30", "comment": "one is enough"}
    )

    assert response.status_code == 302
    proposal = PolicyProposal.objects.get()
    assert proposal.proposed_by == administrator
    assert proposal.outcome == PolicyProposal.Outcome.PENDING
    assert proposal.loosening == [
        "Production: stage 'Service approval': 2 → 1 approvals (3 releases)"
    ]
    assert Policy.objects.get(slug="default").version == 2  # nothing published
    follow = client.get(response["Location"])
    assert "waits for a second administrator" in follow.content.decode()
    assert "It loosens control on regulated environments." in follow.content.decode()


def test_the_first_version_of_a_new_policy_has_nothing_to_compare_with(
    client, history, administrator
):
    Policy.objects.create(name="Payments", slug="payments", source="")
    signed_in(client, administrator)

    preview = client.post("/policies/editor/payments/", {"source": POLICY, "days": "30"})
    response = client.post(
        "/policies/editor/payments/propose/",
        {"source": POLICY, "days": "30", "comment": "first rules"},
    )

    assert "simulation" not in preview.context
    assert "Nothing is published yet" in preview.content.decode()
    assert response.status_code == 302
    assert Policy.objects.get(slug="payments").version == 1


@pytest.fixture
def loosening_proposal(client, history, administrator) -> PolicyProposal:
    signed_in(client, administrator).post(
        PROPOSE, {"source": PRODUCTION_ONE, "days": "30", "comment": "one is enough"}
    )
    client.logout()
    return PolicyProposal.objects.get()


def test_the_second_administrator_sees_the_loosening_in_red_and_must_tick_to_confirm(
    client, loosening_proposal, second_administrator
):
    page = signed_in(client, second_administrator).get("/governance/policies/").content.decode()

    assert 'data-testid="proposal-loosening"' in page
    assert "Production: stage &#x27;Service approval&#x27;: 2 → 1 approvals (3 releases)" in page
    assert 'name="confirm_loosening"' in page
    assert "I confirm this loosening" in page


def test_approving_a_loosening_without_confirming_it_changes_nothing(
    client, loosening_proposal, second_administrator
):
    before = state()
    url = f"/governance/policies/proposals/{loosening_proposal.pk}/decide/"

    response = signed_in(client, second_administrator).post(
        url, {"decision": "approve", "reason": "fine"}, follow=True
    )

    assert "confirm the loosening explicitly" in response.content.decode()
    assert state() == before


def test_approving_a_loosening_with_the_confirmation_publishes_it(
    client, loosening_proposal, second_administrator
):
    url = f"/governance/policies/proposals/{loosening_proposal.pk}/decide/"

    signed_in(client, second_administrator).post(
        url, {"decision": "approve", "reason": "fine", "confirm_loosening": "yes"}
    )

    loosening_proposal.refresh_from_db()
    assert loosening_proposal.outcome == PolicyProposal.Outcome.APPROVED
    assert loosening_proposal.loosening_confirmed is True
    assert Policy.objects.get(slug="default").source == PRODUCTION_ONE


def test_the_proposer_cannot_confirm_their_own_loosening(client, loosening_proposal, administrator):
    before = state()
    url = f"/governance/policies/proposals/{loosening_proposal.pk}/decide/"

    signed_in(client, administrator).post(
        url, {"decision": "approve", "reason": "mine", "confirm_loosening": "yes"}
    )

    assert state() == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": POLICY, "days": "30", "comment": "same"}, "nothing to propose"),
        ({"source": PRODUCTION_THREE, "days": "30", "comment": " "}, "Say why the policy changes."),
        ({"source": "rules: [", "days": "30", "comment": "broken"}, "not valid YAML"),
    ],
)
def test_a_bad_proposal_is_refused_with_a_message_and_changes_nothing(
    client, history, administrator, data, message
):
    before = state()

    response = signed_in(client, administrator).post(PROPOSE, data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert state() == before


# --- the benchmark helper -----------------------------------------------------------------------


def test_the_benchmark_measures_parse_evaluation_and_a_simulated_release(history):
    parse, evaluation, simulated = measure_policy(runs=5)

    rules = len(engine.parse(BUILT_IN.read_text()))
    assert parse.name == f"Policy parse, built-in policy ({rules} rules, uncached)"
    assert evaluation.name == f"Policy evaluation, built-in policy ({rules} rules)"
    assert [len(t.samples) for t in (parse, evaluation, simulated)] == [5, 5, 5]
    assert all(t.error is None and t.p95 > 0 for t in (parse, evaluation, simulated))
    assert simulated.queries == [1] * 7  # each release's incidents, nothing else


def test_fields_in_error_are_announced_to_assistive_technology(client, published, administrator):
    response = signed_in(client, administrator).post(
        PROPOSE, {"source": "", "days": "0", "comment": ""}
    )

    assert set(response.context["form"].errors) == {"source", "days", "comment"}
    assert_errors_announced(response.context["form"], response.content.decode())
