"""The image, the compose file and the Kubernetes manifests hold what a deployment relies on:
a valid compose file, a pinned non-root image with its static files, probes, one beat, a
migrations Job, resource requests, secrets as files, and the agreed worker layout everywhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from config.queues import QUEUE_NAMES
from tests.ops.conftest import ROOT
from tests.ops.packaging import (
    COMPOSE,
    DEPLOYMENT_DOC,
    KUBERNETES,
    compose,
    dockerfile_instructions,
    image_environment,
    kubernetes_manifests,
    make_compose_secrets,
)

APP_SERVICES = ("migrate", "web", "worker", "beat")
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE_KEY|SIGNING_KEY", re.IGNORECASE)
WORKER = ["celery", "-A", "config", "worker"]
# The uid the Dockerfile creates and Kubernetes runs as.
APP_UID = 10001


# --- compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolved_compose(tmp_path_factory) -> dict:
    """`docker-compose config` of compose.yaml, with the secrets made as documented."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: apt-get install docker-compose (.ci/run)"
    folder = tmp_path_factory.mktemp("compose")
    make_compose_secrets(folder)
    result = subprocess.run(
        [docker_compose, "--file", str(COMPOSE), "--project-directory", str(folder), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_validates_and_starts_web_worker_and_beat_after_migrations(resolved_compose):
    services = resolved_compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", *APP_SERVICES}
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["web"]["command"] == [
        "gunicorn",
        "-c",
        "config/gunicorn.conf.py",
        "config.wsgi",
    ]
    beat = ["celery", "-A", "config", "beat", "--loglevel", "INFO"]
    assert services["beat"]["command"] == [*beat, "--schedule", "/tmp/celerybeat-schedule"]
    # PostgreSQL and Redis are healthy before anything uses them; the worker answers pings.
    for name in ("postgres", "redis", "worker"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    # Plain HTTP on localhost: published on this host's loopback only.
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000/tcp"]
    # The web service keeps the image's HEALTHCHECK; migrations and beat serve nothing.
    assert "healthcheck" not in services["web"]
    assert services["beat"]["healthcheck"] == {"test": ["NONE"]}


def test_compose_worker_takes_every_queue_of_the_layout(resolved_compose):
    command = resolved_compose["services"]["worker"]["command"]
    assert command[:4] == WORKER
    assert queues(command) == set(QUEUE_NAMES)
    assert option(command, "--concurrency") == "2" and option(command, "--loglevel") == "INFO"


def test_compose_secrets_are_files_and_images_are_pinned(resolved_compose):
    services = resolved_compose["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["SECRET_KEY_FILE"] == "/run/secrets/signoff_secret_key"
        assert environment["LEDGER_SIGNING_KEY_FILE"] == "/run/secrets/signoff_ledger_signing_key"
        assert "SECRET_KEY" not in environment and "LEDGER_SIGNING_KEY" not in environment
        assert [s["source"] for s in services[name]["secrets"]] == [
            "signoff_secret_key",
            "signoff_ledger_signing_key",
        ]
    # compose.yaml itself names no secret value: they come from the generated, ignored files.
    for name, spec in compose()["services"].items():
        for key, value in spec.get("environment", {}).items():
            assert not SECRET_NAMES.search(key) or key.endswith("_FILE"), (name, key, value)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )
    for name in ("postgres", "redis"):
        assert re.fullmatch(r"[\w.-]+:[\w.-]+@sha256:[0-9a-f]{64}", services[name]["image"])
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split()


def queues(command: list[str]) -> set[str]:
    return set(option(command, "--queues").split(","))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- the image -------------------------------------------------------------------------------


def test_the_image_is_pinned_runs_as_a_user_and_collects_static_files_at_build():
    instructions = dockerfile_instructions()
    bases = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", bases[0])
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users[-1] == "signoff:signoff"
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    assert any(f"useradd --system --uid {APP_UID}" in run for run in runs)
    install = next(run for run in runs if "pip install" in run)
    assert "--no-deps --requirement /tmp/requirements.lock" in install and "pip check" in install
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    assert "requirements-runtime.lock /tmp/requirements.lock" in copies
    assert any("manage.py collectstatic --no-input" in run for run in runs)
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "'Host': 'localhost'" in healthcheck
    assert json.loads(dict(instructions)["CMD"]) == compose()["services"]["web"]["command"]


def test_no_secret_is_baked_into_the_image():
    environment = image_environment()
    assert not [name for name in environment if SECRET_NAMES.search(name)]
    arguments = [args for instruction, args in dockerfile_instructions() if instruction == "ARG"]
    assert not [name for name in arguments if SECRET_NAMES.search(name)]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for private in (".env", ".git", "secrets", "var", "tests", ".venv"):
        assert private in ignored


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    return kubernetes_manifests()


def workloads(manifests: dict[str, dict]) -> dict[str, dict]:
    """Deployments and Jobs by component label."""
    return {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in manifests.values()
        if m["kind"] in ("Deployment", "Job")
    }


def container(workload: dict) -> dict:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def test_the_kustomization_applies_every_manifest_of_the_folder(manifests):
    resources = manifests["kustomization.yaml"]["resources"]
    assert sorted(resources) == sorted(name for name in manifests if name != "kustomization.yaml")
    assert {m["kind"] for m in manifests.values()} >= {
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "ConfigMap",
        "Service",
    }
    assert not [path for path in KUBERNETES.iterdir() if path.suffix != ".yaml"]


def test_web_and_workers_have_probes_and_beat_is_one_recreated_pod(manifests):
    found = workloads(manifests)
    assert set(found) == {"web", "worker", "worker-background", "beat", "migrate"}
    web = container(found["web"])
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert web[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    allowed = manifests["configmap.yaml"]["data"]["ALLOWED_HOSTS"].split(",")
    assert "localhost" in allowed
    for name in ("worker", "worker-background"):
        worker = container(found[name])
        for probe in ("livenessProbe", "readinessProbe"):
            assert "celery -A config inspect ping" in worker[probe]["exec"]["command"][-1]
    beat = found["beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}


def test_kubernetes_runs_the_commands_compose_runs_with_the_worker_queues_split():
    services = compose()["services"]
    found = workloads(kubernetes_manifests())
    assert container(found["web"])["command"] == services["web"]["command"]
    assert container(found["beat"])["command"] == services["beat"]["command"]
    assert container(found["migrate"])["command"] == services["migrate"]["command"]
    assert found["migrate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # `worker` takes what must not wait, `worker-background` the long work: together the queues
    # of compose's single worker, each exactly once, with the same options otherwise.
    compose_worker = services["worker"]["command"]
    fast = container(found["worker"])["command"]
    background = container(found["worker-background"])["command"]
    assert queues(fast) == {"outbound", "verification", "default"}
    assert queues(background) == {"sweeps", "reports"}
    assert queues(fast) | queues(background) == queues(compose_worker)
    for command in (fast, background):
        assert without_queues(command) == without_queues(compose_worker)


def without_queues(command: list[str]) -> list[str]:
    at = command.index("--queues")
    return command[:at] + command[at + 2 :]


def test_every_pod_requests_resources_and_runs_unprivileged_without_writing_its_image(manifests):
    for name, workload in workloads(manifests).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == APP_UID, name
        assert pod["automountServiceAccountToken"] is False, name
        for each in pod["containers"]:
            assert set(each["resources"]["requests"]) == {"cpu", "memory"}, name
            assert each["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            # The only writable places: /tmp, and the shared data volume.
            mounts = {m["mountPath"]: m for m in each["volumeMounts"]}
            assert "/tmp" in mounts, name


def test_secrets_are_mounted_as_files_named_by_file_variables(manifests):
    for name, workload in workloads(manifests).items():
        pod = workload["spec"]["template"]["spec"]
        (each,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "signoff", name
        mount = next(m for m in each["volumeMounts"] if m["name"] == "secrets")
        assert mount["readOnly"] is True
        environment = {e["name"]: e for e in each["env"]}
        assert environment["SECRET_KEY_FILE"]["value"] == f"{mount['mountPath']}/secret-key"
        assert environment["LEDGER_SIGNING_KEY_FILE"]["value"] == (
            f"{mount['mountPath']}/ledger-signing-key"
        )
        assert "SECRET_KEY" not in environment and "LEDGER_SIGNING_KEY" not in environment
        # The two URLs carry credentials: from the Secret too, never from the ConfigMap.
        for url in ("DATABASE_URL", "REDIS_URL"):
            assert environment[url]["valueFrom"]["secretKeyRef"]["name"] == "signoff", name
    assert not [key for key in manifests["configmap.yaml"]["data"] if SECRET_NAMES.search(key)]


def test_disruption_budgets_keep_a_web_pod_and_a_worker_pod(manifests):
    found = workloads(manifests)
    budgets = [m for m in manifests.values() if m["kind"] == "PodDisruptionBudget"]
    selected = {
        component
        for budget in budgets
        for component, workload in found.items()
        if budget["spec"]["selector"]["matchLabels"].items()
        <= workload["spec"]["template"]["metadata"]["labels"].items()
    }
    assert selected == {"web", "worker"}
    web_budget = next(b for b in budgets if b["metadata"]["name"] == "signoff-web")
    assert web_budget["spec"]["minAvailable"] == 1
    assert found["web"]["spec"]["replicas"] > web_budget["spec"]["minAvailable"]


# --- the documentation -----------------------------------------------------------------------


SETTING_READ = re.compile(
    r"env_\w+\(\s*\"([A-Z_0-9]+)\"|os\.environ\.get\(\s*[\"']([A-Z_0-9]+)[\"']"
)
# Switches for the test suite and the development .env, not for deployments.
NOT_DEPLOYMENT_SETTINGS = {"PYTEST_XDIST_WORKER", "SIGNOFF_ENV_FILE"}


def settings_read() -> set[str]:
    """Every environment variable config/ reads (settings, gunicorn, logging, Sentry)."""
    return {
        match[1] or match[2]
        for module in (ROOT / "config").glob("*.py")
        for match in SETTING_READ.finditer(module.read_text())
    }


def test_every_setting_the_processes_read_is_documented_for_operators():
    read = settings_read()
    assert {"SECRET_KEY", "DATABASE_URL", "PORT", "WEB_CONCURRENCY"} <= read
    documented = set(re.findall(r"`([A-Z_0-9]+)`", DEPLOYMENT_DOC.read_text()))
    undocumented = read - documented - NOT_DEPLOYMENT_SETTINGS
    assert not undocumented, f"docs/deployment.md does not mention {sorted(undocumented)}"


def test_the_image_installs_the_runtime_pins_of_the_lock_and_no_test_tools():
    check = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "runtime-lock"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    full = set((ROOT / "requirements.lock").read_text().splitlines())
    runtime = (ROOT / "requirements-runtime.lock").read_text().splitlines()[1:]
    assert set(runtime) <= full
    names = {line.split("==")[0].lower() for line in runtime}
    assert {"django", "celery", "gunicorn", "psycopg", "sentry-sdk"} <= names
    assert not names & {"pytest", "playwright", "hypothesis", "ruff", "moto", "schemathesis"}
