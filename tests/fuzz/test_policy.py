"""Policy documents (YAML with CEL conditions): `governance.policy.engine.parse`, which
publishing, the folder import and the editor all go through, and the editor's endpoints."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from governance.policy.engine import PolicyError, parse
from governance.policy.models import Policy, PolicyVersion
from tests.fuzz.helpers import ENDPOINT, PARSER, fingerprint, shortened
from tests.test_bad_input import DEEP, mutated

DEFAULT = (Path(__file__).resolve().parents[2] / "governance/policy/default.yaml").read_text()
STANDARD_CHANGE = {
    "id": "restart",
    "name": "Restart a service",
    "owner": "platform",
    "services": ["payments-api"],
    "environments": ["production"],
    "review_by": date(2027, 6, 30),
    "window": {"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timezone": "UTC"},
}

BUILT_IN = yaml.safe_load(DEFAULT)
# Three rules are enough to mutate; every rule compiles its CEL, which costs in each example.
TEMPLATE = {**BUILT_IN, "rules": BUILT_IN["rules"][:3], "standard_changes": [STANDARD_CHANGE]}
TEMPLATE_TEXT = yaml.safe_dump(TEMPLATE, sort_keys=False)
YAML_PIECES = ["\t", "&a ", "*a", "!!python/name:os.system", "- ", "{", "? "]
LONG_ZONE = yaml.safe_dump(
    {
        "rules": [],
        "standard_changes": [
            {**STANDARD_CHANGE, "window": {**STANDARD_CHANGE["window"], "timezone": "a" * 300}}
        ],
    }
)


@st.composite
def mutated_policies(draw) -> str:
    """A policy (some built-in rules, the SLAs, the emergency section, a standard change)
    mutated and written back as YAML; wherever the marker was planted, flow lists nest 120 deep
    at most: PyYAML's scanner is quadratic in that depth, and the example past its recursion
    limit is kept explicitly below."""
    document = mutated(SimpleNamespace(draw=draw), TEMPLATE)
    text = yaml.safe_dump(shortened(document), sort_keys=False)
    depth = draw(st.sampled_from([2, 30, 120]))
    return text.replace(DEEP, "[" * depth + "]" * depth)


@st.composite
def mangled_policies(draw) -> str:
    """The template's text cut and spliced: broken indentation, tags, anchors, tabs."""
    cut = draw(st.integers(0, len(TEMPLATE_TEXT)))
    spliced = draw(st.text(max_size=12) | st.sampled_from(YAML_PIECES))
    return TEMPLATE_TEXT[:cut] + spliced + TEMPLATE_TEXT[cut + draw(st.integers(0, 60)) :]


policies = mutated_policies() | mangled_policies()


@settings(PARSER, max_examples=80)
@given(source=policies)
@example(source="rules:\n- id: a\n  require:\n    stages: 5\n")  # TypeError before
@example(source="rules:\n- id: a\n  require:\n    stages: [{key: a, approvers: [cab]}]\n")
@example(source="rules:\n- id: a\n  require:\n    sla: [x]\n")  # unhashable before
@example(source="rules:\n- id: a\n  1: x\n")  # int and str keys could not be sorted before
@example(source="rules: []\nemergency:\n  controls: 5\n")
@example(source="rules: " + "[" * 500 + "]" * 500)  # RecursionError before
@example(source=LONG_ZONE)  # OSError before: ZoneInfo opens the name as a file
def test_a_policy_is_parsed_or_refused_with_a_policy_error(source):
    try:
        rules = parse(source)
    except PolicyError as exc:
        assert isinstance(exc.message, str) and exc.message
        assert exc.line is None or exc.line >= 1
    else:
        assert all(rule.id for rule in rules)


@pytest.fixture
def editor(client, policy, administrator) -> str:
    """An administrator signed in to the editor of the built-in policy; returns its slug."""
    client.force_login(administrator)
    return Policy.objects.get(is_active=True).slug


@pytest.mark.django_db
@ENDPOINT
@given(source=policies)
def test_the_editor_validates_a_draft_as_valid_or_invalid_and_writes_nothing(
    client, editor, source
):
    before = fingerprint(Policy, PolicyVersion)

    response = client.post("/policies/editor/validate/", {"source": source})

    assert response.status_code in (200, 422), response.content[:300]
    assert fingerprint(Policy, PolicyVersion) == before


@pytest.mark.django_db
@ENDPOINT
@given(source=policies)
def test_a_draft_proposed_is_recorded_or_refused_with_nothing_written(client, editor, source):
    before = fingerprint(Policy, PolicyVersion)
    form = {"source": source, "comment": "Tighter production rules.", "days": 7}

    response = client.post(f"/policies/editor/{editor}/propose/", form)

    assert response.status_code in (302, 400), response.content[:300]
    if response.status_code == 400:
        assert fingerprint(Policy, PolicyVersion) == before
