"""Terraform plans (`terraform show -json`): `governance.policy.terraform.summarise` and
`POST /api/v1/releases/<id>/iac-plan/`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approvals.models import ApprovalRequest, ApprovalStage, InfrastructurePlan
from governance.api.parsers import text_problem
from governance.policy.terraform import COUNTS, PlanError, summarise
from tests import factories
from tests.fuzz.helpers import ENDPOINT, PARSER, assert_api_error, bodies, fingerprint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "terraform"
TEMPLATES = [
    json.loads((FIXTURES / name).read_text())
    for name in (
        "world_open_security_group_rule.json",
        "world_open_vpc_ingress_rule.json",
        "sensitive.json",
        "replace_delete_then_create.json",
    )
]
VALID_PLAN = (FIXTURES / "world_open_security_group_rule.json").read_bytes()


@st.composite
def mangled_bytes(draw) -> bytes:
    """A real plan cut short with bytes spliced in (maybe not UTF-8, maybe not JSON)."""
    cut = draw(st.integers(0, len(VALID_PLAN)))
    spliced = draw(st.binary(max_size=8))
    return VALID_PLAN[:cut] + spliced + VALID_PLAN[cut + draw(st.integers(0, 40)) :]


plans = mangled_bytes() | bodies(st.sampled_from(TEMPLATES)).map(str.encode)


def assert_storable_summary(summary: dict) -> None:
    """What the endpoint stores as JSON: whole counts, addresses PostgreSQL can hold."""
    assert all(isinstance(summary[name], int) and summary[name] >= 0 for name in COUNTS)
    for address in summary["sensitive"] + summary["world_open"]:
        assert isinstance(address, str) and address and text_problem(address) is None
    assert len(summary["terraform_version"]) <= 40


@PARSER
@given(raw=plans)
def test_a_plan_is_summarised_or_refused_with_a_plan_error(raw):
    try:
        summary = summarise(raw)
    except PlanError as exc:
        assert isinstance(exc.message, str) and exc.message
    else:
        assert_storable_summary(summary)


@pytest.mark.django_db
@ENDPOINT
@given(raw=plans)
def test_a_plan_sent_by_the_pipeline_is_stored_or_refused_with_nothing_written(
    production_release, pipeline_bot, client, raw
):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {factories.token_for(pipeline_bot)}"}
    tables = (InfrastructurePlan, ApprovalRequest, ApprovalStage)
    before = fingerprint(*tables)

    response = client.post(
        f"/api/v1/releases/{production_release.pk}/iac-plan/",
        raw,
        content_type="application/json",
        **headers,
    )

    assert_api_error(response, {201, 400, 409})
    if response.status_code >= 400:
        assert fingerprint(*tables) == before
