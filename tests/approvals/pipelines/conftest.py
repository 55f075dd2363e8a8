"""Pipeline hooks: a stub GitHub/GitLab API on 127.0.0.1, a GitHub App key, configured
integrations and a mapped repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from approvals import services
from approvals.pipelines import services as pipelines
from tests import factories
from tests.approvals.pipelines import payloads
from tests.approvals.pipelines.stubs import ProviderApi

APP_ID = "123456"


@pytest.fixture(scope="session")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github_app(settings, app_key) -> rsa.RSAPublicKey:
    """The GitHub App's id and private key in settings; returns the public key to verify with."""
    settings.SIGNOFF_GITHUB_APP_ID = APP_ID
    settings.SIGNOFF_GITHUB_APP_PRIVATE_KEY = app_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return app_key.public_key()


@pytest.fixture
def provider_api() -> Iterator[ProviderApi]:
    stub = ProviderApi().start()
    yield stub
    stub.stop()


@pytest.fixture
def github(db, provider_api, github_app):
    return pipelines.configure_integration(
        provider="github",
        actor="ada",
        secret=payloads.GITHUB_SECRET,
        api_url=provider_api.url,
    )


@pytest.fixture
def gitlab(db, provider_api):
    return pipelines.configure_integration(
        provider="gitlab",
        actor="ada",
        secret=payloads.GITLAB_TOKEN,
        api_url=provider_api.url,
        api_token=payloads.GITLAB_API_TOKEN,
    )


@pytest.fixture
def mapped(service):
    for provider in ("github", "gitlab"):
        pipelines.map_repository(
            provider=provider, repository="acme/payments-api", service=service, actor="ada"
        )


@pytest.fixture
def github_release(org, service, production, pipeline_bot):
    """payments-api to production, requested by the pipeline for run 9001 of commit SHA."""
    release, _ = services.request_approval(
        data=factories.release_input(
            service,
            production,
            triggered_by="dave",
            pipeline_provider="github",
            pipeline_run_url=f"https://github.com/acme/payments-api/actions/runs/{payloads.RUN_ID}",
            pipeline_sha=payloads.SHA,
        ),
        actor=pipeline_bot,
    )
    return release
