"""What a provider's hook says about a waiting run, read from the documented payloads.

GitHub sends `deployment_protection_rule` (action "requested") when a job deploying to an
environment with Signoff's protection rule starts; GitLab sends a deployment hook with status
"blocked" when a deployment to a protected environment waits for approval. Both are turned into
one `RunEvent`; anything the link or the answer needs and the payload lacks is refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from approvals.exceptions import InvalidRequest
from approvals.pipelines.models import Provider

# GitHub's callback is .../repos/<owner>/<repo>/actions/runs/<run id>/deployment_protection_rule.
GITHUB_RUN = re.compile(r"/actions/runs/(\d+)(?:/|$)")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+$")


@dataclass(frozen=True)
class RunEvent:
    """A run waiting on an environment, as one provider described it."""

    provider: str
    repository: str
    environment_name: str
    external_id: str
    run_url: str
    sha: str
    callback: dict = field(default_factory=dict)
    run_id: str = ""
    sender: str = ""

    def ledger_payload(self) -> dict:
        return {
            "provider": self.provider,
            "repository": self.repository,
            "environment": self.environment_name,
            "external_id": self.external_id,
            "run_url": self.run_url,
            "sha": self.sha,
            "sender": self.sender,
        }


def github_run(payload: dict) -> RunEvent:
    """The run a `deployment_protection_rule` event asks about."""
    callback_url = _text(payload, "deployment_callback_url")
    match = GITHUB_RUN.search(urlsplit(callback_url).path)
    if not match:
        raise _invalid("deployment_callback_url", "Must name the run (.../actions/runs/<id>/...).")
    run_id = match.group(1)
    repository = _text(payload.get("repository"), "full_name", "repository.full_name")
    environment = _text(payload, "environment")
    deployment = _object(payload, "deployment")
    sha = str(payload.get("sha") or deployment.get("sha") or "").lower()
    installation = _object(payload, "installation")
    if not isinstance(installation.get("id"), int):
        raise _invalid("installation", "The GitHub App installation id is missing.")
    html_url = str(_object(payload, "repository").get("html_url") or "")
    base = html_url if html_url.startswith("https://") else f"https://github.com/{repository}"
    # One deployment per job attempt: a re-run asks again and is answered again.
    external_id = f"deployment:{deployment['id']}" if deployment.get("id") else f"run:{run_id}"
    return RunEvent(
        provider=Provider.GITHUB,
        repository=repository,
        environment_name=environment,
        external_id=f"{external_id}:{environment}"[:200],
        run_url=f"{base}/actions/runs/{run_id}"[:500],
        sha=sha if COMMIT_SHA.match(sha) else "",
        callback={
            "url": callback_url,
            "installation_id": installation["id"],
            "environment_name": environment,
        },
        run_id=run_id,
        sender=str(_object(payload, "sender").get("login") or "")[:150],
    )


def gitlab_run(payload: dict) -> RunEvent:
    """The deployment a GitLab deployment hook describes (its status is checked by the caller)."""
    project = _object(payload, "project")
    repository = _text(project, "path_with_namespace", "project.path_with_namespace")
    if not isinstance(project.get("id"), int):
        raise _invalid("project", "The project id is missing.")
    deployment_id = payload.get("deployment_id")
    if not isinstance(deployment_id, int):
        raise _invalid("deployment_id", "Must be the deployment's number.")
    environment = _text(payload, "environment")
    # The hook carries the short sha; the whole commit is the commit URL's last segment.
    tail = str(payload.get("commit_url") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    user = _object(payload, "user")
    run_url = str(payload.get("deployable_url") or "")
    return RunEvent(
        provider=Provider.GITLAB,
        repository=repository,
        environment_name=environment,
        external_id=str(deployment_id),
        run_url=run_url[:500] if run_url.startswith(("http://", "https://")) else "",
        sha=tail if COMMIT_SHA.match(tail) else "",
        callback={"project_id": project["id"], "deployment_id": deployment_id},
        sender=str(user.get("username") or "")[:150],
    )


def _object(document: dict, key: str) -> dict:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _text(document: object, key: str, name: str = "") -> str:
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise _invalid(name or key, "Required: 1 to 500 characters of text.")
    return value.strip()


def _invalid(field_name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field_name}: {message}", fields={field_name: [message]})
