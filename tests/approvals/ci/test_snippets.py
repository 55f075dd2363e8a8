"""The CI snippets we ship (docs/ci/, tools/jenkins/), run as each CI would run them: their
shell lines in order, with the variables that CI sets, against a live Signoff. A snippet that
breaks fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from approvals.models import Deployment, Evidence, Release
from tests import factories
from tests.approvals.ci.client import job_env, run_shell
from tests.approvals.ci.test_client import CI_VARIABLES, TESTS_PASSED

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(settings.BASE_DIR)
SNIPPETS = ROOT / "docs" / "ci"
DIGEST = "sha256:" + "5f" * 32
VERSION = "2.5.0"
RUN_URLS = {ci: run_url for ci, (_, run_url, _) in CI_VARIABLES.items()}


@pytest.fixture
def token(live_server, org, pipeline_bot) -> str:
    return factories.token_for(pipeline_bot)


@pytest.fixture
def base_env(live_server, token) -> dict[str, str]:
    return job_env(live_server.url, token)


@pytest.fixture
def decide_release(approver, second_approver, cab_member):
    """What the approvers do in Signoff while the pipeline waits."""

    def decide(release_id: str, verdict: str = "approve") -> None:
        release = Release.objects.get(pk=int(release_id))
        people = (approver, second_approver, cab_member) if verdict == "approve" else (approver,)
        for person in people:
            factories.decide(release, person, verdict=verdict, rationale="Reviewed the diff.")

    return decide


def with_signoff_url(variables: dict, base_env: dict[str, str]) -> dict[str, str]:
    """The snippet's own variables, pointed at this Signoff instead of signoff.example.com."""
    return {**{k: str(v) for k, v in variables.items()}, "SIGNOFF_URL": base_env["SIGNOFF_URL"]}


def assert_deployed_with_approval(ci: str) -> Release:
    release = Release.objects.get()
    assert (release.pipeline_provider, release.pipeline_run_url) == (ci, RUN_URLS[ci])
    assert (release.version, release.digest) == (VERSION, DIGEST)
    assert release.triggered_by.username == "dave"
    assert Evidence.objects.filter(release=release, kind="tests", status="passed").exists()
    deployment = Deployment.objects.get(release=release)
    assert (deployment.status, deployment.approved, deployment.digest) == (
        "succeeded",
        True,
        DIGEST,
    )
    return release


# --- GitHub Actions -------------------------------------------------------------------------

GITHUB_EXPRESSION = re.compile(r"^\$\{\{\s*(.+?)\s*\}\}$")


def github_value(value: str, outputs: dict[str, dict[str, str]], token: str) -> str:
    """What the runner makes of a step's `env` value: secrets, step outputs, job status."""
    match = GITHUB_EXPRESSION.match(str(value))
    if not match:
        return str(value)
    expression = match.group(1)
    if expression == "secrets.SIGNOFF_TOKEN":
        return token
    if step := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression):
        return outputs[step.group(1)][step.group(2)]
    if expression.startswith("job.status == 'success'"):
        return "succeeded"
    raise AssertionError(f"The test does not know the expression {expression!r}")


def read_outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_the_github_actions_workflow_requests_waits_and_reports(
    base_env, token, tmp_path, decide_release
):
    workflow = yaml.safe_load((SNIPPETS / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    env = {
        **base_env,
        **CI_VARIABLES["github"][0],
        **with_signoff_url(job["env"], base_env),
        "BUILT_DIGEST": DIGEST,
        "BUILT_VERSION": VERSION,
    }
    outputs: dict[str, dict[str, str]] = {}
    for index, step in enumerate(job["steps"]):
        if "run" not in step:
            continue
        output = tmp_path / f"github-output-{index}"
        step_env = {k: github_value(v, outputs, token) for k, v in step.get("env", {}).items()}
        run = run_shell(step["run"], {**env, **step_env, "GITHUB_OUTPUT": str(output)}, tmp_path)
        assert run.code == 0, f"{step['name']}: {run.stderr}"
        outputs[step.get("id", str(index))] = read_outputs(output)
        if step.get("id") == "signoff":
            decide_release(outputs["signoff"]["release-id"])

    release = assert_deployed_with_approval("github")
    assert release.change.title == f"Payments API {VERSION}"


# --- GitLab CI ------------------------------------------------------------------------------


def gitlab_job(document: dict, name: str, env: dict[str, str], tmp_path: Path, key="script"):
    return run_shell("\n".join(document[name][key]), env, tmp_path)


@pytest.fixture
def gitlab(base_env):
    document = yaml.safe_load((SNIPPETS / "gitlab-ci.yml").read_text())
    env = {
        **base_env,
        **CI_VARIABLES["gitlab"][0],
        **with_signoff_url(document["variables"], base_env),
        # From the build job's dotenv report.
        "SIGNOFF_DIGEST": DIGEST,
        "SIGNOFF_VERSION": VERSION,
    }
    return document, env


def test_the_gitlab_pipeline_requests_in_one_job_and_deploys_in_the_next(
    gitlab, tmp_path, decide_release
):
    document, env = gitlab

    request = gitlab_job(document, "request-approval", env, tmp_path)
    assert request.code == 0, request.stderr
    dotenv = read_outputs(tmp_path / document["request-approval"]["artifacts"]["reports"]["dotenv"])
    decide_release(dotenv["SIGNOFF_RELEASE"])
    deploy = gitlab_job(document, "deploy-production", {**env, **dotenv}, tmp_path)
    after = gitlab_job(
        document,
        "deploy-production",
        {**env, **dotenv, "CI_JOB_STATUS": "success"},
        tmp_path,
        key="after_script",
    )

    assert deploy.code == 0, deploy.stderr
    assert after.code == 0, after.stderr
    assert document["deploy-production"]["needs"] == ["request-approval"]
    assert_deployed_with_approval("gitlab")


def test_a_rejected_release_fails_the_gitlab_deploy_job_and_is_reported_failed(
    gitlab, tmp_path, decide_release
):
    document, env = gitlab
    gitlab_job(document, "request-approval", env, tmp_path)
    dotenv = read_outputs(tmp_path / "signoff.env")
    decide_release(dotenv["SIGNOFF_RELEASE"], verdict="reject")

    deploy = gitlab_job(document, "deploy-production", {**env, **dotenv}, tmp_path)
    after = gitlab_job(
        document,
        "deploy-production",
        {**env, **dotenv, "CI_JOB_STATUS": "failed"},
        tmp_path,
        key="after_script",
    )

    assert deploy.code == 2
    assert "Gate: rejected" in deploy.stderr
    assert "Deploying" not in deploy.stdout
    assert after.code == 0, after.stderr
    deployment = Deployment.objects.get()
    assert (deployment.status, deployment.approved) == ("failed", False)


# --- Azure Pipelines ------------------------------------------------------------------------

SET_VARIABLE = re.compile(r"^##vso\[task\.setvariable variable=(\w+);isOutput=true\](.*)$", re.M)
STAGE_OUTPUT = re.compile(r"^\$\[\s*stageDependencies\.\w+\.\w+\.outputs\['([\w.]+)'\]\s*\]$")


def azure_steps(stage: dict) -> list[dict]:
    (job,) = stage["jobs"]
    if "strategy" in job:
        return job["strategy"]["runOnce"]["deploy"]["steps"]
    return job["steps"]


def azure_run(steps: list[dict], env: dict, token: str, tmp_path: Path) -> dict[str, str]:
    """Run the bash steps as the agent does (`bash` without -e: the script must stop itself);
    returns the output variables they set, as `<step name>.<variable>`."""
    outputs = {}
    for step in steps:
        step_env = {
            name: token if value == "$(SIGNOFF_TOKEN)" else value
            for name, value in step.get("env", {}).items()
        }
        run = run_shell(step["bash"], {**env, **step_env}, tmp_path, errexit=False)
        assert run.code == 0, f"{step['displayName']}: {run.stderr}"
        for name, value in SET_VARIABLE.findall(run.stdout):
            outputs[f"{step.get('name')}.{name}"] = value
    return outputs


def test_the_azure_pipeline_requests_in_one_stage_and_deploys_in_the_next(
    base_env, token, tmp_path, decide_release
):
    document = yaml.safe_load((SNIPPETS / "azure-pipelines.yml").read_text())
    variables = {item["name"]: item["value"] for item in document["variables"] if "name" in item}
    env = {
        **base_env,
        **CI_VARIABLES["azure"][0],
        **with_signoff_url(variables, base_env),
        "SIGNOFF_DIGEST": DIGEST,
        "SIGNOFF_VERSION": VERSION,
    }
    env.pop("SIGNOFF_TOKEN")  # a secret: only what a step maps through `env:` reaches it
    approval, deploy = document["stages"]

    outputs = azure_run(azure_steps(approval), env, token, tmp_path)
    mapped = {
        name: outputs[STAGE_OUTPUT.match(value).group(1)]
        for name, value in deploy["variables"].items()
    }
    decide_release(mapped["SIGNOFF_RELEASE"])
    azure_run(azure_steps(deploy), {**env, **mapped}, token, tmp_path)

    assert deploy["jobs"][0]["environment"] == "production"
    assert_deployed_with_approval("azure")


def test_an_azure_request_that_fails_stops_its_step(base_env, token, tmp_path):
    """Without `set -e` the agent's bash would carry on and set an empty release id."""
    document = yaml.safe_load((SNIPPETS / "azure-pipelines.yml").read_text())
    variables = {item["name"]: item["value"] for item in document["variables"] if "name" in item}
    env = {**base_env, **CI_VARIABLES["azure"][0], **with_signoff_url(variables, base_env)}
    fetch, request = azure_steps(document["stages"][0])
    run_shell(fetch["bash"], env, tmp_path, errexit=False)

    run = run_shell(
        request["bash"],
        {**env, "SIGNOFF_DIGEST": "sha256:bad", "SIGNOFF_VERSION": VERSION},
        tmp_path,
        errexit=False,
    )

    assert run.code == 65
    assert "##vso" not in run.stdout
    assert Release.objects.count() == 0


# --- Jenkins --------------------------------------------------------------------------------

LIBRARY = ROOT / "tools" / "jenkins" / "vars" / "signoffGate.groovy"
SH_BLOCK = re.compile(r"label: '([^']+)'.*?script: '''(.*?)'''", re.S)
ENV_FROM_ARGUMENT = re.compile(r'"(SIGNOFF_\w+)=\$\{args\.(\w+)(?: \?: \'\')?\}"')


def jenkinsfile_arguments(jenkins_env: dict[str, str]) -> dict[str, str]:
    """signoffGate(...)'s named arguments in the Jenkinsfile (one a line), as Groovy reads
    them: quoted strings with ${env.X} filled in, or env.X itself."""
    text = (SNIPPETS / "Jenkinsfile").read_text()
    call = re.search(r"signoffGate\((.*?)\n\s*\)", text, re.S).group(1)
    arguments = {}
    for name, value in re.findall(r"^\s*(\w+): (.+?),?$", call, re.M):
        if value.startswith("env."):
            arguments[name] = jenkins_env[value.removeprefix("env.")]
        else:
            fill = re.sub(r"\$\{env\.(\w+)\}", lambda m: jenkins_env[m.group(1)], value)
            arguments[name] = fill[1:-1]
    return arguments


def test_the_jenkins_library_step_requests_waits_and_reports(base_env, tmp_path, decide_release):
    library = LIBRARY.read_text()
    blocks = dict(SH_BLOCK.findall(library))
    build = {"DIGEST": DIGEST, "VERSION": VERSION}
    arguments = jenkinsfile_arguments(build)
    env = {**base_env, **CI_VARIABLES["jenkins"][0], "SIGNOFF_TIMEOUT": "30"}
    env.update(
        {variable: arguments.get(name, "") for variable, name in ENV_FROM_ARGUMENT.findall(library)}
    )
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "signoff-evidence.json").write_text(TESTS_PASSED)

    fetched = run_shell(blocks["Get signoff-gate"], env, tmp_path)
    requested = run_shell(blocks["Request approval"], env, tmp_path)
    release_id = requested.stdout.strip()
    decide_release(release_id)
    waited = run_shell(
        blocks["Wait for approval"], {**env, "SIGNOFF_RELEASE": release_id}, tmp_path
    )
    reported = run_shell(
        blocks["Report the outcome"],
        {**base_env, "SIGNOFF_RELEASE": release_id, "SIGNOFF_DEPLOY_STATUS": "succeeded"},
        tmp_path,
    )

    assert [fetched.code, requested.code, waited.code, reported.code] == [0, 0, 0, 0], (
        fetched.stderr + requested.stderr + waited.stderr + reported.stderr
    )
    assert list(blocks) == [
        "Get signoff-gate",
        "Request approval",
        "Wait for approval",
        "Report the outcome",
    ]
    release = assert_deployed_with_approval("jenkins")
    assert (release.service.slug, release.environment.slug) == ("payments-api", "production")
    assert (release.change.ref, release.change.title) == ("CHG0031400", f"Payments API {VERSION}")
