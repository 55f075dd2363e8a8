"""What the parser property tests share: their hypothesis settings, decoded near-valid
documents, and the fingerprint of what an endpoint may write."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from governance.api.parsers import load_json

# What a refusal must leave as it was: row counts, the ledger's length and last seq.
from tests.factories import table_state as fingerprint  # noqa: F401
from tests.test_bad_input import DEEP, hostile_body, mutated

# Derandomized so CI runs the same examples every time; no example database, so a failure
# found once lives on as an `@example(...)` in the test rather than in a local folder.
PARSER = settings(max_examples=120, deadline=None, derandomize=True, database=None)
# HTTP examples cost a request and a few queries each: fewer of them, sharing the test's data.
ENDPOINT = settings(
    PARSER,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# How deep a decoded document may nest: `governance.api.parsers.load_json` refuses deeper
# bodies before any parser sees them.
DECODED_DEPTHS = st.integers(1, 30)
# The marker where it is a value; as a key it stays text (a key cannot be an array).
_DEEP_VALUE = re.compile(re.escape(json.dumps(DEEP)) + r"(?!\s*:)")


@st.composite
def documents(draw, templates: st.SearchStrategy[dict]) -> object:
    """A template mutated as `tests.test_bad_input.mutated` does, then as the JSON transport
    hands it to a parser: the deep-nesting marker becomes arrays nested up to 30 levels."""
    text = json.dumps(mutated(SimpleNamespace(draw=draw), draw(templates)))
    depth = draw(DECODED_DEPTHS)
    return json.loads(_DEEP_VALUE.sub("[" * depth + "]" * depth, text))


def storable(document: object) -> bool:
    """Whether the JSON transport lets `document` through (no NUL, no unpaired surrogate, no
    infinite number): what a service behind `load_json` is given."""
    try:
        load_json(json.dumps(document))
    except ValueError:  # UnsafeJSON, or Infinity, which JSON does not have
        return False
    return True


@st.composite
def bodies(draw, templates: st.SearchStrategy[dict]) -> str:
    """Request bodies: half as an attacker sends them (`tests.test_bad_input.hostile_body`,
    mostly refused by the JSON transport), half decoded documents with their strings cut to
    20,000 characters, which the transport lets through to the parser behind it."""
    if draw(st.booleans()):
        return hostile_body(SimpleNamespace(draw=draw), draw(templates))
    return json.dumps(shortened(draw(documents(templates))))


def shortened(node: object) -> object:
    """`node` with its strings cut to 20,000 characters (a megabyte is past most body limits,
    and costs PyYAML, pure Python, a second)."""
    if isinstance(node, dict):
        return {shortened(key): shortened(value) for key, value in node.items()}
    if isinstance(node, list):
        return [shortened(item) for item in node]
    return node[:20_000] if isinstance(node, str) else node


def assert_api_error(response, statuses: set[int]) -> dict:
    """One of `statuses`; a refusal is the API's JSON error with a code and a message."""
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    if response.status_code < 400:
        return response.json()
    assert response["Content-Type"] == "application/json", response.content[:300]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


# Times as outside systems write them, and as they should not: well-formed but impossible
# dates and offsets, the ends of the calendar, other formats.
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            "2026-02-30T15:16:27Z",
            "2026-11-30T15:16:27+25:00",
            "2026-11-30T24:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-30 15:16:27",
            "30/11/2026",
            "",
        ]
    ),
)
