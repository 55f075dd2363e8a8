"""The payloads GitHub and GitLab send, shaped as their documentation shows them, and the
headers each signs or authenticates them with."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
RUN_ID = 9001
GITHUB_SECRET = "github-webhook-secret-0001"
GITLAB_TOKEN = "gitlab-webhook-token-0002"
GITLAB_API_TOKEN = "glpat-api-token-0003"


def github_event(api_url: str, **overrides) -> dict:
    """A `deployment_protection_rule` event (action "requested") for acme/payments-api."""
    run_id = overrides.pop("run_id", RUN_ID)
    repository = overrides.pop("repository", "acme/payments-api")
    environment = overrides.pop("environment", "production")
    sha = overrides.pop("sha", SHA)
    event = {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "ref": "refs/heads/main",
        "sha": sha,
        "deployment_callback_url": (
            f"{api_url}/repos/{repository}/actions/runs/{run_id}/deployment_protection_rule"
        ),
        "deployment": {
            "url": f"{api_url}/repos/{repository}/deployments/1",
            "id": overrides.pop("deployment_id", 145988746),
            "node_id": "DE_kwDOKL3OA84IsZ4K",
            "task": "deploy",
            "original_environment": environment,
            "environment": environment,
            "description": None,
            "created_at": "2026-12-07T04:00:00Z",
            "updated_at": "2026-12-07T04:00:00Z",
            "statuses_url": f"{api_url}/repos/{repository}/deployments/1/statuses",
            "repository_url": f"{api_url}/repos/{repository}",
            "creator": {"login": "dave", "id": 21031067, "type": "User"},
            "sha": sha,
            "ref": "main",
            "payload": {},
            "transient_environment": False,
            "production_environment": True,
            "performed_via_github_app": None,
        },
        "pull_requests": [],
        "repository": {
            "id": 186853002,
            "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
            "name": repository.split("/")[-1],
            "full_name": repository,
            "private": True,
            "html_url": f"https://github.com/{repository}",
            "owner": {"login": repository.split("/")[0], "id": 6811672, "type": "Organization"},
        },
        "organization": {"login": "acme", "id": 6811672},
        "installation": {"id": 4242, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
        "sender": {"login": "dave", "id": 21031067, "type": "User"},
    }
    event.update(overrides)
    return event


def github_headers(
    body: bytes, *, secret: str = GITHUB_SECRET, event: str = "deployment_protection_rule", **extra
) -> dict:
    """What GitHub sends with a delivery: the event, a fresh delivery id, both signatures."""
    headers = {
        "HTTP_X_GITHUB_EVENT": event,
        "HTTP_X_GITHUB_DELIVERY": str(uuid.uuid4()),
        "HTTP_X_HUB_SIGNATURE_256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "HTTP_X_HUB_SIGNATURE": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
    }
    headers.update(extra)
    return {k: v for k, v in headers.items() if v is not None}


def gitlab_event(**overrides) -> dict:
    """A deployment hook for acme/payments-api, blocked: it waits for an approval."""
    sha = overrides.pop("sha", SHA)
    event = {
        "object_kind": "deployment",
        "status": "blocked",
        "status_changed_at": "2026-12-07 04:00:00 +0000",
        "deployment_id": 15,
        "deployable_id": 796,
        "deployable_url": "https://gitlab.example.com/acme/payments-api/-/jobs/796",
        "environment": "production",
        "environment_tier": "production",
        "environment_slug": "production",
        "environment_external_url": "https://payments.example.com",
        "project": {
            "id": 30,
            "name": "payments-api",
            "description": "",
            "web_url": "https://gitlab.example.com/acme/payments-api",
            "avatar_url": None,
            "git_ssh_url": "git@gitlab.example.com:acme/payments-api.git",
            "git_http_url": "https://gitlab.example.com/acme/payments-api.git",
            "namespace": "acme",
            "visibility_level": 0,
            "path_with_namespace": "acme/payments-api",
            "default_branch": "main",
            "ci_config_path": "",
        },
        "short_sha": sha[:8],
        "user": {
            "id": 1,
            "name": "Dave",
            "username": "dave",
            "avatar_url": None,
            "email": "dave@example.com",
        },
        "user_url": "https://gitlab.example.com/dave",
        "commit_url": f"https://gitlab.example.com/acme/payments-api/-/commit/{sha}",
        "commit_title": "Payments API 2.14.0",
    }
    event.update(overrides)
    return event


def gitlab_headers(*, token: str = GITLAB_TOKEN, **extra) -> dict:
    key = str(uuid.uuid4())
    headers = {
        "HTTP_X_GITLAB_EVENT": "Deployment Hook",
        "HTTP_X_GITLAB_TOKEN": token,
        "HTTP_X_GITLAB_EVENT_UUID": key,
        "HTTP_IDEMPOTENCY_KEY": key,
    }
    headers.update(extra)
    return {k: v for k, v in headers.items() if v is not None}


def dumps(document: dict) -> bytes:
    return json.dumps(document).encode()
