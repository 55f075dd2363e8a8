"""GitHub's and GitLab's hooks: authenticate first, then read the event; a refusal writes nothing.

Answers are JSON: 200 when the run was linked (or was already), 202 when it was received but
nothing could be linked (the message says why), 401 when it is not authenticated, 400 when the
payload lacks what the link needs.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from approvals.exceptions import InvalidRequest
from approvals.pipelines import events, services
from approvals.pipelines.models import PipelineIntegration, Provider
from approvals.pipelines.signatures import valid_github_signature, valid_gitlab_token
from governance.api.parsers import UnsafeJSON, load_json

GITHUB_EVENT = "deployment_protection_rule"
GITLAB_EVENT = "Deployment Hook"


def _error(code: str, message: str, status: int, fields: dict | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return JsonResponse(body, status=status)


def _ignored(message: str) -> JsonResponse:
    return JsonResponse({"status": "ignored", "message": message}, status=202)


@csrf_exempt
@require_POST
def github_webhook(request: HttpRequest) -> JsonResponse:
    """A GitHub App's webhook: `ping`, and `deployment_protection_rule` (action "requested")."""
    try:
        body = request.body  # read once: the signature covers these exact bytes
    except RequestDataTooBig:
        return _error("payload_too_large", "The request body is too large.", 413)
    integration = PipelineIntegration.objects.filter(provider=Provider.GITHUB).first()
    refused = _github_refusal(request, body, integration)
    if refused:
        return refused
    kind = request.headers.get("X-GitHub-Event", "")
    if kind == "ping":
        return JsonResponse({"status": "pong"})
    if kind != GITHUB_EVENT:
        return _ignored(f"Signoff acts on {GITHUB_EVENT} events only; '{kind}' is ignored.")
    payload, problem = _payload(body)
    if problem:
        return problem
    if payload.get("action") != "requested":
        return _ignored("Only a requested deployment protection rule waits on Signoff.")
    delivery = request.headers.get("X-GitHub-Delivery", "").strip()
    if not delivery:
        return _error("invalid", "X-GitHub-Delivery header is missing.", 400)
    try:
        run = events.github_run(payload)
    except InvalidRequest as exc:
        return _error(exc.code, exc.message, 400, exc.fields)
    if not services.callback_allowed(run, integration):
        message = "deployment_callback_url is not under the configured GitHub API URL."
        return _error("invalid", message, 400, {"deployment_callback_url": [message]})
    outcome = services.receive_run(event=run, delivery_id=delivery)
    return JsonResponse(outcome.as_dict(), status=outcome.http_status)


def _github_refusal(request, body: bytes, integration) -> JsonResponse | None:
    if integration is None or not integration.webhook_secret:
        return _error("not_configured", "The GitHub integration is not configured.", 401)
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        if request.headers.get("X-Hub-Signature"):
            message = "X-Hub-Signature (SHA-1) is not accepted; X-Hub-Signature-256 is required."
            return _error("signature_sha1_refused", message, 401)
        return _error("signature_missing", "X-Hub-Signature-256 header is missing.", 401)
    if not valid_github_signature(header, body, integration.webhook_secret):
        message = "X-Hub-Signature-256 does not match the configured secret (HMAC-SHA256)."
        return _error("signature_invalid", message, 401)
    return None


@csrf_exempt
@require_POST
def gitlab_webhook(request: HttpRequest) -> JsonResponse:
    """A GitLab project or group webhook with deployment events; status "blocked" waits."""
    try:
        body = request.body
    except RequestDataTooBig:
        return _error("payload_too_large", "The request body is too large.", 413)
    integration = PipelineIntegration.objects.filter(provider=Provider.GITLAB).first()
    if integration is None or not integration.token_digest:
        return _error("not_configured", "The GitLab integration is not configured.", 401)
    token = request.headers.get("X-Gitlab-Token", "")
    if not token:
        return _error("token_missing", "X-Gitlab-Token header is missing.", 401)
    if not valid_gitlab_token(token, integration.token_digest):
        return _error("token_invalid", "X-Gitlab-Token is not the configured token.", 401)
    payload, problem = _payload(body)
    if problem:
        return problem
    if payload.get("object_kind") != "deployment":
        return _ignored("Signoff acts on deployment events only.")
    if payload.get("status") != "blocked":
        return _ignored(f"Only a blocked deployment waits on Signoff ('{payload.get('status')}').")
    try:
        run = events.gitlab_run(payload)
    except InvalidRequest as exc:
        return _error(exc.code, exc.message, 400, exc.fields)
    # GitLab keeps Idempotency-Key across retries of one delivery (X-Gitlab-Event-UUID before).
    delivery = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
    outcome = services.receive_run(event=run, delivery_id=(delivery or "").strip())
    return JsonResponse(outcome.as_dict(), status=outcome.http_status)


def _payload(body: bytes) -> tuple[dict, JsonResponse | None]:
    try:
        payload = load_json(body.decode())
    except UnsafeJSON as exc:
        return {}, _error("invalid", exc.message, 400)
    except (UnicodeDecodeError, ValueError):
        return {}, _error("invalid", "The body is not JSON.", 400)
    if not isinstance(payload, dict):
        return {}, _error("invalid", "The body is not a JSON object.", 400)
    return payload, None
