"""The mutation-testing plugin (`tests/invariants/mutation_plugin.py`) empties every policy
reader's cache before each test: a reader it missed would answer mutants with what the original
code parsed, and they would survive tests that catch them."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import governance.policy
from tests.invariants.mutation_plugin import cached_policy_readers


def test_every_cached_policy_reader_is_emptied_before_each_mutant_s_tests():
    cached = set()
    for module_info in pkgutil.iter_modules(governance.policy.__path__):
        module = importlib.import_module(f"governance.policy.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, functools._lru_cache_wrapper)
                and value.__module__ == module.__name__
            ):
                cached.add(value)

    assert cached == set(cached_policy_readers())
