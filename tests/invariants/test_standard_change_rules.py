"""Standard change templates (`governance/policy/standard.py`): the edges of a template's window
and review date, and the words of every refusal, that mutation testing showed no test pinned
down. A template approves a release with nobody's decision, so each of its conditions is a rule
as strict as an approver's. Pure functions: no database."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from governance.policy import standard
from governance.policy.conditions import PolicyError
from governance.policy.evidence import snapshot_item
from tests.governance.policy.test_policy import context

TEMPLATE = (
    "rules:\n  - id: r\nstandard_changes:\n  - id: t\n    name: Patch\n    owner: grace\n"
    "    services: [svc]\n    environments: [production]\n    review_by: 2026-12-08\n"
)
# Tuesday 8 December 2026, 09:00 in New York (UTC-5).
NINE_IN_NEW_YORK = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)


def with_window(window: str) -> str:
    return TEMPLATE + f"    window: {window}\n"


def standard_release() -> dict:
    release = context()
    release["change"]["type"] = "standard"
    return release


def assess(source: str, moment: datetime, release: dict | None = None) -> standard.Outcome:
    release = release or standard_release()
    latest = {
        kind: snapshot_item(item["status"], item) for kind, item in release["evidence"].items()
    }
    return standard.assess(source, "t", release, latest, moment)


# --- A template's identity ------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["just-text", "{name: Patch}", "{id: '  '}"])
def test_a_template_without_an_id_is_refused_at_its_place(item):
    source = f"rules:\n  - id: r\nstandard_changes:\n  - {item}\n"

    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(source)

    assert str(excinfo.value) == "Standard change 1 needs an 'id'."
    assert (excinfo.value.line, excinfo.value.column) == (4, 5)


def test_a_repeated_catalogue_key_is_read_as_yaml_reads_it_and_refused_without_a_place():
    """YAML keeps the last of two `standard_changes:` keys; the first one, a mapping, has no
    templates to point at, so the refusal names the template but no line."""
    source = "rules:\n  - id: r\nstandard_changes: {a: 1}\nstandard_changes:\n  - {name: X}\n"

    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(source)

    assert (str(excinfo.value), excinfo.value.line) == ("Standard change 1 needs an 'id'.", None)


HEAD = "rules:\n  - id: r\nstandard_changes:\n  - id: t\n    name: Patch\n    owner: grace\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (TEMPLATE[len(HEAD) :] + "    colour: red\n", "unknown key(s) colour."),
        (
            "    services: svc\n    environments: [production]\n    review_by: 2026-12-08\n",
            "'services' must be a non-empty list of slugs.",
        ),
        (
            "    services: [svc]\n    environments: []\n    review_by: 2026-12-08\n",
            "'environments' must be a non-empty list of slugs.",
        ),
        (TEMPLATE[len(HEAD) :] + "    evidence: {kind: tests}\n", "'evidence' must be a list."),
        (
            TEMPLATE[len(HEAD) :] + "    evidence:\n      - {status: passed}\n",
            "each evidence requirement needs a 'kind'.",
        ),
        (
            "    services: [svc]\n    environments: [production]\n    review_by: soon\n",
            "'review_by' must be a date (YYYY-MM-DD): templates are reviewed, and stop applying "
            "after that date until they are.",
        ),
    ],
    ids=["unknown-key", "services", "environments", "evidence", "requirement", "review-by"],
)
def test_a_bad_template_is_refused_naming_it_and_what_is_wrong(body, message):
    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(HEAD + body)

    assert str(excinfo.value) == "Standard change 't': " + message
    assert (excinfo.value.line, excinfo.value.column) == (4, 5)


def test_a_template_s_condition_error_points_inside_the_condition():
    source = TEMPLATE + '    when: >-\n      service.tier ==\n        "x" && nope\n'

    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(source)

    assert str(excinfo.value) == (
        "Standard change 't': 'when' uses unknown variable(s) nope; available: release, "
        "service, environment, change, evidence, incidents, plan."
    )
    assert (excinfo.value.line, excinfo.value.column) == (10, 11)


def test_a_template_s_syntax_error_points_at_its_line_and_column_in_the_file():
    source = TEMPLATE + "    when: >-\n      service.tier == 1 &&\n        service.slug ==\n"

    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(source)

    assert str(excinfo.value).startswith(
        "Standard change 't': CEL syntax error in 'when' at line 12, column 24: Syntax error: "
    )
    assert (excinfo.value.line, excinfo.value.column) == (12, 24)


def test_a_template_reads_back_its_names_and_a_yaml_true_condition():
    template = standard.standard_templates(
        TEMPLATE + "    description: Small fixes\n    when: true\n"
    )["t"]

    assert (template.name, template.description, template.when) == ("Patch", "Small fixes", "true")
    assert template.as_dict() == {
        "id": "t",
        "name": "Patch",
        "owner": "grace",
        "review_by": "2026-12-08",
    }
    assert assess(TEMPLATE + "    when: true\n", NINE_IN_NEW_YORK).applies


# --- A template's window ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("5", ": 'window' must be a mapping of days, start, end, timezone."),
        (
            "{days: [mon], start: '09:00', end: '17:00', zone: UTC}",
            ", window: unknown key(s) zone.",
        ),
        (
            "{days: mon, start: '09:00', end: '17:00'}",
            ", window: 'days' must list some of mon, tue, wed, thu, fri, sat, sun.",
        ),
        (
            "{days: [], start: '09:00', end: '17:00'}",
            ", window: 'days' must list some of mon, tue, wed, thu, fri, sat, sun.",
        ),
        (
            "{days: [monday], start: '09:00', end: '17:00'}",
            ", window: 'days' must list some of mon, tue, wed, thu, fri, sat, sun.",
        ),
        ("{start: '09:00'}", ", window: 'start' and 'end' must be times (HH:MM)."),
        ("{start: nine, end: '17:00'}", ", window: 'start' and 'end' must be times (HH:MM)."),
        ("{start: '09:00', end: '09:00'}", ", window: 'start' must come before 'end'."),
        (
            "{start: '09:00', end: '17:00', timezone: Mars/Olympus}",
            ", window: unknown time zone 'Mars/Olympus'.",
        ),
    ],
    ids=[
        "not-a-mapping",
        "unknown-key",
        "days-not-a-list",
        "no-days",
        "unknown-day",
        "no-end",
        "not-a-time",
        "empty",
        "unknown-zone",
    ],
)
def test_a_bad_window_is_refused_saying_what_is_wrong_and_where(window, message):
    with pytest.raises(PolicyError) as excinfo:
        standard.standard_templates(with_window(window))

    assert str(excinfo.value) == "Standard change 't'" + message
    assert (excinfo.value.line, excinfo.value.column) == (4, 5)


def test_a_window_without_days_or_zone_means_weekdays_in_utc():
    templates = standard.standard_templates(with_window("{start: '09:00', end: '17:00'}"))

    assert templates["t"].window == standard.Window(
        ("mon", "tue", "wed", "thu", "fri"), time(9), time(17), "UTC"
    )


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (NINE_IN_NEW_YORK, True),  # opens at its start
        (datetime(2026, 12, 8, 13, 59, tzinfo=UTC), False),  # 08:59 there
        (datetime(2026, 12, 8, 21, 59, tzinfo=UTC), True),  # 16:59 there
        (datetime(2026, 12, 8, 22, 0, tzinfo=UTC), False),  # closes at its end
        (datetime(2026, 12, 9, 3, 0, tzinfo=UTC), False),  # Wednesday in UTC, 22:00 Tuesday there
        (datetime(2026, 12, 7, 14, 0, tzinfo=UTC), False),  # Monday 09:00 there: not a listed day
    ],
    ids=["start", "before", "last-minute", "end", "late-evening", "other-day"],
)
def test_a_window_holds_from_its_start_to_before_its_end_on_its_days_in_its_zone(moment, inside):
    window = standard.Window(("tue",), time(9), time(17), "America/New_York")

    assert window.contains(moment) is inside


# --- Assessing a release against a template -------------------------------------------------------


def test_a_template_still_applies_on_its_review_date_and_not_the_day_after():
    on_the_day = assess(TEMPLATE, datetime(2026, 12, 8, 23, 0, tzinfo=UTC))
    day_after = assess(TEMPLATE, datetime(2026, 12, 9, 0, 0, tzinfo=UTC))

    assert (on_the_day.applies, on_the_day.failures) == (True, [])
    assert day_after.failures == ["it was due for review on 2026-12-08"]


def test_outside_its_window_a_template_says_when_it_applies():
    source = with_window("{days: [tue], start: '09:00', end: '17:00', timezone: America/New_York}")

    outcome = assess(source, datetime(2026, 12, 8, 13, 0, tzinfo=UTC))

    assert outcome.failures == ["it applies only Tue 09:00-17:00 (America/New_York)"]


def test_a_condition_that_cannot_be_evaluated_does_not_hold():
    source = TEMPLATE + "    when: evidence.scan.status == 'clean'\n"

    outcome = assess(source, NINE_IN_NEW_YORK)

    assert outcome.failures == ["its condition `evidence.scan.status == 'clean'` does not hold"]


def test_a_template_s_evidence_is_required_in_its_own_name_and_its_problem_is_a_failure():
    source = TEMPLATE + "    evidence:\n      - {kind: tests, status: passed, max_failed: 0}\n"
    release = standard_release()
    release["evidence"] = {"tests": {"status": "passed", "passed": 9, "failed": 1}}

    outcome = assess(source, NINE_IN_NEW_YORK, release)

    assert [(e.kind, e.rules) for e in outcome.evidence] == [("tests", ["standard:t"])]
    # The evidence's own words, without their full stop: the plan joins failures into a sentence.
    assert outcome.failures == ["Evidence 'tests' reports 1 failed; at most 0 allowed"]


def test_an_unknown_template_approves_nothing_and_asks_for_nothing():
    outcome = standard.assess(TEMPLATE, "nope", standard_release(), {}, NINE_IN_NEW_YORK)

    assert (outcome.template, outcome.evidence, outcome.applies) == (None, [], False)


def test_a_template_without_a_description_has_an_empty_one():
    assert standard.standard_templates(TEMPLATE)["t"].description == ""
