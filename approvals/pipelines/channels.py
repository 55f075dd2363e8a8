"""How the outbox talks to GitHub and GitLab when it answers a waiting run.

Both read the integration at send time, so a rotated token or a corrected API URL applies to
answers still queued. A row is only ever sent to a URL under the configured API URL: the
callback URL arrives in a webhook, and a forged one must not carry the App's token elsewhere.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings

from approvals.pipelines.models import PipelineIntegration, Provider
from governance.models import Delivery
from governance.notifications import outbox
from governance.notifications.outbox import DeliveryRefused, OutboundRequest, json_body

GITHUB_MEDIA_TYPE = "application/vnd.github+json"
GITHUB_API_VERSION = "2022-11-28"
# GitHub accepts an App JWT for at most ten minutes; its clock may run a little behind ours.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 9 * 60


def under_api_url(url: str, api_url: str) -> bool:
    """Whether `url` is on the API's scheme, host and port, and inside its path."""
    if not api_url:
        return False
    target, api = urlsplit(url), urlsplit(api_url)
    base = api.path.rstrip("/") + "/"
    return (
        (target.scheme, target.netloc.lower()) == (api.scheme, api.netloc.lower())
        and target.path.startswith(base)
        and ".." not in target.path.split("/")
    )


def app_jwt(app_id: str, private_key: str, now: float | None = None) -> str:
    """The GitHub App's own token (RS256): what buys an installation token."""
    issued = int(now if now is not None else time.time()) - JWT_BACKDATE_SECONDS
    claims = {"iat": issued, "exp": issued + JWT_BACKDATE_SECONDS + JWT_LIFETIME_SECONDS}
    return jwt.encode({**claims, "iss": str(app_id)}, private_key, algorithm="RS256")


def installation_token(session: requests.Session, api_url: str, installation_id: object) -> str:
    """A short-lived installation token, exchanged for the App JWT at send time."""
    app_id = settings.SIGNOFF_GITHUB_APP_ID
    private_key = settings.SIGNOFF_GITHUB_APP_PRIVATE_KEY
    if not app_id or not private_key:
        raise DeliveryRefused(
            "the GitHub App is not set up (SIGNOFF_GITHUB_APP_ID, SIGNOFF_GITHUB_APP_PRIVATE_KEY)"
        )
    if not isinstance(installation_id, int):
        raise DeliveryRefused("the run's GitHub App installation is unknown")
    try:
        assertion = app_jwt(app_id, private_key)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise DeliveryRefused(
            "SIGNOFF_GITHUB_APP_PRIVATE_KEY is not a usable RSA private key (PEM)"
        ) from None
    response = session.post(
        f"{api_url}/app/installations/{installation_id}/access_tokens",
        headers={
            "Accept": GITHUB_MEDIA_TYPE,
            "Authorization": f"Bearer {assertion}",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "User-Agent": "Signoff-Outbox/1",
        },
        timeout=outbox.TIMEOUT_SECONDS,
        allow_redirects=False,
    )
    token = _json(response).get("token") if response.status_code == 201 else None
    if not isinstance(token, str) or not token:
        raise DeliveryRefused(
            f"GitHub gave no installation token ({response.status_code} {response.reason})"
        )
    return token


def _json(response: requests.Response) -> dict:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _integration(provider: str, label: str, url: str) -> PipelineIntegration:
    integration = PipelineIntegration.objects.filter(provider=provider).first()
    if integration is None or not integration.api_url:
        raise DeliveryRefused(f"{label}'s API URL is not configured")
    if not under_api_url(url, integration.api_url):
        raise DeliveryRefused(f"the callback is not under {label}'s API URL")
    return integration


def github_request(delivery: Delivery, session: requests.Session) -> OutboundRequest:
    """POST the review to the run's deployment_callback_url as the App's installation."""
    integration = _integration(Provider.GITHUB, "GitHub", delivery.url)
    token = installation_token(
        session, integration.api_url, delivery.credentials.get("installation_id")
    )
    return OutboundRequest(
        url=delivery.url,
        body=json_body(delivery.payload),
        headers={
            "Accept": GITHUB_MEDIA_TYPE,
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "Content-Type": "application/json",
        },
    )


def gitlab_request(delivery: Delivery, session: requests.Session) -> OutboundRequest:
    """POST the approval to GitLab's deployment approval API with the configured token."""
    integration = _integration(Provider.GITLAB, "GitLab", delivery.url)
    if not integration.api_token:
        raise DeliveryRefused("GitLab's API token is not configured")
    return OutboundRequest(
        url=delivery.url,
        body=json_body(delivery.payload),
        headers={"PRIVATE-TOKEN": integration.api_token, "Content-Type": "application/json"},
    )


outbox.register_channel(Provider.GITHUB.value, github_request)
outbox.register_channel(Provider.GITLAB.value, gitlab_request)
