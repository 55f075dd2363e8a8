"""Loaded by `make mutate` (pyproject.toml, [tool.mutmut] pytest_add_cli_args).

mutmut runs pytest inside its own process, whose name does not say "pytest", so the settings
would not know that a test suite is running (config.settings.TESTING) and would, for one, hash
every fixture password at production cost. Imported before Django is set up, this says it.
"""

import sys

sys.argv[0] = "pytest"


def pytest_runtest_setup(item: object) -> None:
    """Start every test with the policy engine's caches empty.

    mutmut forks each mutant's run from its own process, which has already run the suite: the
    policy documents parsed there by the original code stay cached, and a mutant in the parsing
    would never run. Emptying the caches makes every test parse with the code under test.
    """
    from governance.policy import engine

    engine.parse.cache_clear()
    engine.emergency_settings.cache_clear()
