"""The decision service's edges (`approvals/services/decisions.py`, `record_decision`) that
mutation testing showed no test pinned down; each test names the rule it holds."""

from __future__ import annotations

import pytest

from approvals.exceptions import InvalidRequest
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("verdict", "rationale", "message"),
    [
        ("maybe", "Fine.", "Decision must be 'approve' or 'reject'."),
        ("approve", " \n ", "A rationale is required for every decision."),
    ],
    ids=["verdict", "rationale"],
)
def test_a_refused_decision_says_why_in_words_the_ui_and_api_show(
    production_release, approver, verdict, rationale, message
):
    with factories.nothing_changes(production_release), pytest.raises(InvalidRequest) as exc:
        factories.decide(production_release, approver, verdict, rationale)

    assert str(exc.value) == message
