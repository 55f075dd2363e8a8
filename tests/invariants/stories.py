"""Short stories through the model's own steps, for the tests that show each invariant bite:
`play` runs a story on a fresh model and `then` takes one step, each followed by every check."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from approvals import gate
from approvals.models import Release
from tests.invariants import model
from tests.invariants.checks import InvariantBroken
from tests.invariants.organisation import BOT, build_organisation


def play(story: Callable[[model.Organisation], None]) -> None:
    """Run `story` on a fresh model, judging every invariant after each of its steps."""
    build_organisation()
    machine = model.organisation()
    try:
        machine.every_invariant_holds()
        story(machine)
    finally:
        machine.teardown()


def play_broken(
    story: Callable[[model.Organisation], None],
    broken: tuple[object, str, object],
    numbers: Iterable[int],
) -> None:
    """Play `story` with one product rule replaced: `broken` is (module or class, name,
    replacement). The model must stop the story, naming one of the invariants `numbers`."""
    where, name, replacement = broken
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(where, name, replacement)
        with pytest.raises(InvariantBroken) as caught:
            play(story)
    assert any(str(caught.value).startswith(f"Invariant {n} ") for n in numbers), caught.value


def then(machine: model.Organisation, step: str, *args) -> None:
    getattr(machine, step)(*args)
    machine.every_invariant_holds()


def request(machine: model.Organisation, service: str, environment: str) -> int:
    """The pipeline asks for a normal release with passing tests; its index in the model."""
    args = (BOT, service, environment, "", None, "normal", "passed", False, None)
    then(machine, "request_release", *args)
    return len(machine.releases) - 1


def gate_says(machine: model.Organisation, index: int) -> str:
    release = Release.objects.for_gate().get(pk=machine.releases[index])
    return gate.evaluate_gate(release, now=machine.clock.now()).status
