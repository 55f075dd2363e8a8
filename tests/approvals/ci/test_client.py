"""The signoff-gate client against a live Signoff: every command, every exit code, and the
run details each CI's own variables give it."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, Deployment, Evidence, Release
from tests import factories
from tests.approvals.ci.client import CLIENT, FAST, job_env, run_client

pytestmark = pytest.mark.django_db(transaction=True)
DIGEST = "sha256:" + "ab" * 32
REQUEST = [
    "request",
    "--service",
    "payments-api",
    "--environment",
    "production",
    "--version",
    "2.5.0",
    "--image",
    "registry.example.com/payments/api",
    "--digest",
    DIGEST,
    "--change",
    "CHG0031400",
    "--change-title",
    "Payout limits per seller",
    "--evidence-file",
    "evidence.json",
]
TESTS_PASSED = '[{"kind": "tests", "status": "passed", "summary": {"passed": 812, "failed": 0}}]'
CI_VARIABLES = {
    "github": (
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/payments-api",
            "GITHUB_RUN_ID": "9001",
            "GITHUB_SHA": "3f786850e387550fdab836ed7e6dc881de23001b",
            "GITHUB_ACTOR": "dependabot[bot]",
            "GITHUB_TRIGGERING_ACTOR": "dave",
        },
        "https://github.com/acme/payments-api/actions/runs/9001",
        "signoff-gate:github:acme/payments-api:9001:payments-api:production",
    ),
    "gitlab": (
        {
            "GITLAB_CI": "true",
            "CI_PIPELINE_ID": "4711",
            "CI_PIPELINE_URL": "https://gitlab.example.com/payments/api/-/pipelines/4711",
            "CI_PROJECT_PATH": "payments/api",
            "CI_COMMIT_SHA": "3f786850e387550fdab836ed7e6dc881de23001b",
            "GITLAB_USER_LOGIN": "dave",
        },
        "https://gitlab.example.com/payments/api/-/pipelines/4711",
        "signoff-gate:gitlab:payments/api:4711:payments-api:production",
    ),
    "azure": (
        {
            "TF_BUILD": "True",
            "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
            "SYSTEM_TEAMPROJECT": "Payments Platform",
            "SYSTEM_TEAMPROJECTID": "2e4c6a8b-0d1f-4e3a-9b5c-7d9f1a3c5e55",
            "BUILD_BUILDID": "812",
            "BUILD_SOURCEVERSION": "3f786850e387550fdab836ed7e6dc881de23001b",
            "BUILD_REQUESTEDFOR": "Dave Example",
            "BUILD_REQUESTEDFOREMAIL": "dave@example.com",
        },
        "https://dev.azure.com/acme/2e4c6a8b-0d1f-4e3a-9b5c-7d9f1a3c5e55/_build/results?buildId=812",
        "signoff-gate:azure:2e4c6a8b-0d1f-4e3a-9b5c-7d9f1a3c5e55:812:payments-api:production",
    ),
    "jenkins": (
        {
            "JENKINS_URL": "https://jenkins.example.com/",
            "BUILD_URL": "https://jenkins.example.com/job/payments-api/57/",
            "JOB_NAME": "payments-api",
            "BUILD_NUMBER": "57",
            "GIT_COMMIT": "3f786850e387550fdab836ed7e6dc881de23001b",
            "BUILD_USER_ID": "dave",
        },
        "https://jenkins.example.com/job/payments-api/57/",
        "signoff-gate:jenkins:payments-api:57:payments-api:production",
    ),
}


@pytest.fixture
def server(live_server, org, pipeline_bot):
    """The live server's URL and the pipeline bot's token."""
    return live_server.url, factories.token_for(pipeline_bot)


@pytest.fixture
def env(server):
    return job_env(*server)


@pytest.fixture(autouse=True)
def _in_a_workspace(tmp_path, monkeypatch):
    """The job's workspace: the tests' evidence file is there, as a build step would leave it."""
    (tmp_path / "evidence.json").write_text(TESTS_PASSED)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def release_id(env) -> str:
    run = run_client(REQUEST, env)
    assert run.code == 0, run.stderr
    return run.stdout.strip()


def approve(release_id: str, *people) -> None:
    release = Release.objects.get(pk=release_id)
    for person in people:
        factories.decide(release, person)


def test_request_prints_the_release_id_and_a_retry_gets_the_same_release(env, tmp_path):
    env = {**env, **CI_VARIABLES["github"][0], "GITHUB_OUTPUT": str(tmp_path / "github-output")}

    first = run_client([*REQUEST, "--output", str(tmp_path / "release-id")], env)
    retried = run_client(REQUEST, env)

    release = Release.objects.get()
    assert (first.code, retried.code) == (0, 0)
    assert first.stdout == retried.stdout == f"{release.pk}\n"
    assert (tmp_path / "release-id").read_text() == f"{release.pk}\n"
    assert (tmp_path / "github-output").read_text() == f"release-id={release.pk}\n" * 2
    assert f"Release {release.pk} requested: pending (gate: pending)" in first.stderr
    assert (release.service.slug, release.environment.slug, release.version) == (
        "payments-api",
        "production",
        "2.5.0",
    )
    assert (release.image, release.digest, release.change.ref) == (
        "registry.example.com/payments/api",
        DIGEST,
        "CHG0031400",
    )


@pytest.mark.parametrize("ci", list(CI_VARIABLES))
def test_request_takes_the_run_from_the_cis_own_variables(env, ci):
    variables, run_url, key = CI_VARIABLES[ci]

    run = run_client(REQUEST, {**env, **variables})

    assert run.code == 0, run.stderr
    release = Release.objects.get(pk=run.stdout.strip())
    assert (release.pipeline_provider, release.pipeline_run_url) == (ci, run_url)
    assert release.triggered_by.username == "dave"
    assert release.idempotency_key == key
    assert release.pipeline_sha == "3f786850e387550fdab836ed7e6dc881de23001b"


def test_request_from_signoff_variables_alone(env):
    variables = {
        "SIGNOFF_SERVICE": "payments-api",
        "SIGNOFF_ENVIRONMENT": "staging",
        "SIGNOFF_VERSION": "2.5.1",
        "SIGNOFF_IMAGE": "registry.example.com/payments/api",
        "SIGNOFF_DIGEST": DIGEST,
        "SIGNOFF_CHANGE": "CHG0031401",
    }

    run = run_client(["request"], {**env, **variables})

    assert run.code == 0, run.stderr
    release = Release.objects.get(pk=run.stdout.strip())
    assert (release.environment.slug, release.version, release.idempotency_key) == (
        "staging",
        "2.5.1",
        None,
    )


def test_request_refused_by_the_api_prints_its_message_and_exits_65(env):
    bad_digest = [*REQUEST[:-8], "--digest", "sha256:nothex", *REQUEST[-6:]]

    run = run_client(bad_digest, env)

    assert run.code == 65
    assert run.stdout == ""
    assert "Signoff refused the call (400 invalid)" in run.stderr
    assert "artifact.digest" in run.stderr
    assert "Must be 'sha256:' followed by 64 lowercase hex digits." in run.stderr
    assert Release.objects.count() == 0


def test_request_with_a_missing_flag_is_a_usage_error(env):
    run = run_client(REQUEST[:-8], env)

    assert run.code == 64
    assert "request needs --digest, --change" in run.stderr
    assert Release.objects.count() == 0


def test_wait_exits_0_when_approved(env, release_id, approver, second_approver, cab_member):
    approve(release_id, approver, second_approver, cab_member)

    run = run_client(["wait", "--release", release_id, "--digest", DIGEST, *FAST], env)

    assert run.code == 0, run.stderr
    assert "Gate: approved" in run.stderr


def test_wait_polls_until_people_decide(env, release_id, approver, second_approver, cab_member):
    waiting = subprocess.Popen(
        [sys.executable, str(CLIENT), "wait", "--release", release_id, "--timeout", "30", *FAST],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    approve(release_id, approver, second_approver, cab_member)

    code = waiting.wait(timeout=30)

    stderr = waiting.stderr.read()
    assert code == 0, stderr
    assert stderr.index("Gate: pending") < stderr.index("Gate: approved")
    waiting.stderr.close()
    waiting.stdout.close()


def test_wait_exits_2_when_rejected(env, release_id, approver):
    release = Release.objects.get(pk=release_id)
    factories.decide(release, approver, verdict="reject", rationale="Limits are wrong.")

    run = run_client(["wait", "--release", release_id, *FAST], env)

    assert run.code == 2
    assert "Gate: rejected" in run.stderr
    assert "Limits are wrong." in run.stderr


def test_wait_exits_3_when_expired(env, release_id):
    ApprovalRequest.objects.filter(release_id=release_id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    run = run_client(["wait", "--release", release_id, *FAST], env)

    assert run.code == 3
    assert "Gate: expired" in run.stderr


def test_wait_exits_4_when_still_pending_at_the_timeout(env, release_id):
    run = run_client(["wait", "--release", release_id, "--timeout", "0.5", *FAST], env)

    assert run.code == 4
    assert "No answer after 0.5 s (gate: pending)." in run.stderr


def test_wait_exits_5_when_still_blocked_at_the_timeout(env, release_id):
    other = "sha256:" + "cd" * 32

    run = run_client(
        ["wait", "--release", release_id, "--digest", other, "--timeout", "0.5", *FAST], env
    )

    assert run.code == 5
    assert f"Digest {other} is not the approved artifact" in run.stderr
    assert "Still blocked after 0.5 s" in run.stderr


def test_wait_on_a_release_out_of_scope_or_with_a_bad_token_exits_65(env, release_id, outsider):
    outsiders = {**env, "SIGNOFF_TOKEN": factories.token_for(outsider)}

    hidden = run_client(["wait", "--release", release_id, *FAST], outsiders)
    bad_token = run_client(["wait", "--release", release_id, *FAST], {**env, "SIGNOFF_TOKEN": "x"})

    assert hidden.code == 65
    assert "(404 not_found)" in hidden.stderr
    assert bad_token.code == 65
    assert "(401 authentication_failed): Invalid, revoked or expired token." in bad_token.stderr


def test_an_unreachable_server_exits_69(env, release_id):
    unreachable = {**env, "SIGNOFF_URL": "http://127.0.0.1:9"}

    run = run_client(["wait", "--release", release_id, "--timeout", "0.3", *FAST], unreachable)

    assert run.code == 69
    assert "could not be reached" in run.stderr


def test_evidence_is_added_and_the_gate_shown(env, release_id):
    run = run_client(
        [
            "evidence",
            "--release",
            release_id,
            "--kind",
            "security_scan",
            "--status",
            "passed",
            "--summary",
            "critical=0",
            "--summary",
            "high=0",
            "--url",
            "https://ci.example.com/scan/1",
        ],
        env,
    )

    assert run.code == 0, run.stderr
    assert "Evidence security_scan (passed) added." in run.stderr
    item = Evidence.objects.get(release_id=release_id, kind="security_scan")
    assert (item.status, item.summary, item.url) == (
        "passed",
        {"critical": 0, "high": 0},
        "https://ci.example.com/scan/1",
    )


def test_evidence_the_api_refuses_exits_65_with_the_field(env, release_id):
    before = Evidence.objects.count()

    run = run_client(
        [
            *("evidence", "--release", release_id, "--kind", "tests", "--status", "passed"),
            *("--summary", "failed=-5"),
        ],
        env,
    )

    assert run.code == 65
    assert "summary" in run.stderr
    assert "'failed' must be a whole number of 0 or more, not -5." in run.stderr
    assert Evidence.objects.count() == before


def test_report_records_the_deployment_and_flags_an_unapproved_one(env, release_id, tmp_path):
    (tmp_path / "id").write_text(release_id + "\n")

    run = run_client(
        [
            *("report", "--release-file", str(tmp_path / "id"), "--status", "succeeded"),
            *("--digest", DIGEST, "--url", "https://ci.example.com/deploy/1"),
        ],
        env,
    )

    assert run.code == 0, run.stderr
    deployment = Deployment.objects.get(release_id=release_id)
    assert (deployment.status, deployment.digest, deployment.approved) == (
        "succeeded",
        DIGEST,
        False,
    )
    assert "UNAPPROVED deployment" in run.stderr


def test_report_of_an_approved_release(env, release_id, approver, second_approver, cab_member):
    approve(release_id, approver, second_approver, cab_member)

    run = run_client(["report", "--status", "succeeded"], {**env, "SIGNOFF_RELEASE": release_id})

    assert run.code == 0, run.stderr
    assert Deployment.objects.get(release_id=release_id).approved is True
    assert "UNAPPROVED" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "choose a command"),
        (["wait"], "Which release?"),
        (["report", "--release", "1"], "the following arguments are required: --status"),
        (
            [
                "evidence",
                "--release",
                "1",
                "--kind",
                "tests",
                "--status",
                "passed",
                "--summary",
                "x",
            ],
            "--summary takes name=value",
        ),
    ],
)
def test_usage_errors_exit_64(env, args, message):
    run = run_client(args, env)

    assert run.code == 64
    assert message in run.stderr


def test_without_url_or_token_the_client_says_which_variables_to_set(env):
    run = run_client(["wait", "--release", "1"], {"PATH": env["PATH"]})

    assert run.code == 64
    assert "Set SIGNOFF_URL and SIGNOFF_TOKEN" in run.stderr


def test_the_client_is_python_3_9_syntax_and_standard_library_only():
    tree = ast.parse(CLIENT.read_text(), feature_version=(3, 9))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }

    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    assert CLIENT.stat().st_mode & 0o111
