"""Loaded by `make mutate` (pyproject.toml, [tool.mutmut] pytest_add_cli_args).

mutmut runs pytest inside its own process, whose name does not say "pytest", so the settings
would not know that a test suite is running (config.settings.TESTING) and would, for one, hash
every fixture password at production cost. Imported before Django is set up, this says it.
"""

import sys

sys.argv[0] = "pytest"
