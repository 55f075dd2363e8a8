"""The organisation model keeps every invariant, for as long as it is asked to run.

`make test` gives it about a minute (SIGNOFF_MODEL_SECONDS, default 60); `make prove` as long as
asked (PROVE_MINUTES or PROVE_EXAMPLES). Examples run in batches sized to end near the deadline,
each batch a fresh hypothesis run that first replays the failures saved in
tests/invariants/failures/. SIGNOFF_MODEL_STEPS sets the longest story (default 40 steps).
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.invariants import drawing, model
from tests.invariants.organisation import build_organisation

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def budget() -> tuple[float, int | None]:
    """Seconds to run for, and an example count that ends the run sooner when given."""
    seconds = float(os.environ.get("SIGNOFF_MODEL_SECONDS") or "60")
    examples = os.environ.get("SIGNOFF_MODEL_EXAMPLES")
    return seconds, int(examples) if examples else None


def test_the_organisation_keeps_every_invariant():
    build_organisation()
    seconds, examples = budget()
    steps = int(os.environ.get("SIGNOFF_MODEL_STEPS", "40"))
    start, ran, batch = time.monotonic(), 0, 3
    drawing.tally.clear()
    while True:
        if examples is not None:
            batch = min(batch, examples - ran)
        run_state_machine_as_test(
            model.organisation,
            settings=settings(
                settings.get_profile(model.PROFILE), max_examples=batch, stateful_step_count=steps
            ),
        )
        ran += batch
        elapsed = time.monotonic() - start
        if elapsed >= seconds or (examples is not None and ran >= examples):
            break
        # The next batch is sized to end near the deadline, and at most 50 examples long (each
        # batch begins with the replay of the saved failures).
        batch = max(1, min(50, int((seconds - elapsed) / (elapsed / ran))))
    seen = dict(drawing.tally)
    print(f"\n{ran} examples of up to {steps} steps in {elapsed:.0f} s; seen: {seen}")
