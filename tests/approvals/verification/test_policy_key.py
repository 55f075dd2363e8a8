"""`require: verification:` in policies: validated with messages naming the rule, combined so
that the strictest wins (the longest window, the shortest interval), carried on the plan and
explained."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.policy import engine
from governance.policy.engine import PolicyError
from governance.policy.reference import SAMPLE_CONTEXT

pytestmark = pytest.mark.django_db


def policy(*verifications: str) -> str:
    rules = "".join(
        f"  - id: r{index}\n    require:\n      verification: {text}\n"
        for index, text in enumerate(verifications, start=1)
    )
    return "rules:\n" + rules


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "30",
            "Rule 'r1' (line 2), verification must be a mapping such as "
            "{minutes: 30, interval_seconds: 60}.",
        ),
        (
            "{interval_seconds: 60}",
            "Rule 'r1' (line 2), verification needs 'minutes': how long "
            "after a deployment to watch it.",
        ),
        (
            "{minutes: 0}",
            "Rule 'r1' (line 2), verification, minutes must be a positive whole number, got 0.",
        ),
        (
            "{minutes: '15'}",
            "Rule 'r1' (line 2), verification, minutes must be a positive whole number, got '15'.",
        ),
        (
            "{minutes: 1441}",
            "Rule 'r1' (line 2), verification, minutes must be at most 1440 (a day), got 1441.",
        ),
        (
            "{minutes: 5, interval_seconds: 5}",
            "Rule 'r1' (line 2), verification, "
            "interval_seconds must be a whole number of at least 10, got 5.",
        ),
        (
            "{minutes: 1, interval_seconds: 120}",
            "Rule 'r1' (line 2), verification, "
            "interval_seconds (120) is longer than the window (1 minutes): the health would "
            "never be checked.",
        ),
        ("{minutes: 5, every: 60}", "Rule 'r1' (line 2), verification: unknown key(s) every."),
    ],
)
def test_a_malformed_verification_is_refused_naming_the_rule(text, message):
    with pytest.raises(PolicyError) as refused:
        engine.parse(policy(text))

    assert str(refused.value) == message


def test_the_interval_defaults_to_a_minute():
    plan = engine.evaluate(policy("{minutes: 10}"), SAMPLE_CONTEXT)

    assert plan.verification == {"minutes": 10, "interval_seconds": 60, "rules": ["r1"]}


def test_the_strictest_wins_the_longest_window_and_the_shortest_interval():
    plan = engine.evaluate(
        policy("{minutes: 10, interval_seconds: 30}", "{minutes: 30, interval_seconds: 120}"),
        SAMPLE_CONTEXT,
    )

    assert plan.verification == {"minutes": 30, "interval_seconds": 30, "rules": ["r1", "r2"]}


def test_a_plan_without_the_key_has_no_verification_and_old_plans_read_back():
    plan = engine.evaluate("rules:\n  - id: r1\n", SAMPLE_CONTEXT)

    assert plan.verification is None
    stored = plan.to_dict()
    del stored["verification"]  # a plan frozen before the key existed
    assert engine.Plan.from_dict(stored).verification is None


def test_explain_names_the_verification_and_its_rule(api, approver, production_release):
    response = api(approver).get(
        reverse("approvals-api:release-explain", args=[production_release.pk])
    )

    found = [r for r in response.json()["requirements"] if r["kind"] == "verification"]
    assert [(r["text"], [rule["id"] for rule in r["rules"]]) for r in found] == [
        (
            "Health is verified for 15 minutes after a successful deployment, every 60 seconds; "
            "a failure calls the rollback hook",
            ["tier-1-production-verification"],
        )
    ]
