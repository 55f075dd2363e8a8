"""Production settings, checked and served the way a deployment runs them."""

from __future__ import annotations

import subprocess

from tests.ops.conftest import PYTHON, ROOT, base_environment, documented_environment, real_secrets


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    documented = documented_environment()
    assert documented["DEBUG"] == "false"
    # .env.example must not carry a usable secret: the operator generates one.
    assert not documented.get("SECRET_KEY")
    env = {**base_environment(tmp_path), **documented, **real_secrets()}
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
