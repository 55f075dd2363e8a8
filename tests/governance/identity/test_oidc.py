"""OIDC sign-in against a small OpenID provider that the test runs on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db
CLIENT_ID = "signoff-test"


class Provider:
    """Token, userinfo and JWKS endpoints of an OpenID provider, with RS256 keys of its own."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.jwk = {
            **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
            "kid": "k1",
            "use": "sig",
            "alg": "RS256",
        }
        self.claims: dict = {}
        self.nonce = ""
        self.token_requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._json({"keys": [provider.jwk]})
                elif self.path == "/userinfo":
                    self._json(provider.claims)
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                provider.token_requests.append(parse_qs(self.rfile.read(length).decode()))
                now = int(time.time())
                id_token = jwt.encode(
                    {
                        "iss": provider.url,
                        "aud": CLIENT_ID,
                        "iat": now,
                        "exp": now + 300,
                        "nonce": provider.nonce,
                        **provider.claims,
                    },
                    provider.private_pem,
                    algorithm="RS256",
                    headers={"kid": "k1"},
                )
                self._json({"id_token": id_token, "access_token": "at-1", "token_type": "Bearer"})

        return Handler

    def settings(self) -> dict:
        return {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": "s3cret",
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
        }


@pytest.fixture
def provider():
    stub = Provider()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def sign_in_through(client, provider: Provider, claims: dict):
    """Start sign-in, play the provider's part, and follow the callback."""
    provider.claims = {"sub": "00u1", **claims}
    start = client.get(reverse("oidc_authentication_init"))
    assert start.status_code == 302
    redirect = urlparse(start["Location"])
    assert redirect.netloc == urlparse(provider.url).netloc
    query = parse_qs(redirect.query)
    assert query["client_id"] == [CLIENT_ID] and "code_challenge" in query
    provider.nonce = query["nonce"][0]
    return client.get(
        reverse("oidc_authentication_callback"), {"code": "auth-code-1", "state": query["state"][0]}
    )


def test_a_provisioned_person_signs_in_with_oidc(client, provider):
    person = factories.UserFactory(username="alice", email="alice@example.com")
    with override_settings(**provider.settings()):
        response = sign_in_through(client, provider, {"email": "ALICE@example.com"})
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").context["user"] == person
    assert provider.token_requests[0]["code"] == ["auth-code-1"]


@pytest.mark.parametrize("who", ["unknown", "inactive", "service_account"])
def test_nobody_without_an_active_account_signs_in(client, provider, who):
    if who == "inactive":
        factories.UserFactory(username="gone", email="gone@example.com", is_active=False)
    if who == "service_account":
        factories.UserFactory(username="bot", email="bot@example.com", is_service_account=True)
    email = {
        "unknown": "nobody@example.com",
        "inactive": "gone@example.com",
        "service_account": "bot@example.com",
    }[who]
    with override_settings(**provider.settings()):
        response = sign_in_through(client, provider, {"email": email})
    assert response.status_code == 302 and "sso=failed" in response["Location"]
    assert "_auth_user_id" not in client.session


def test_sso_is_off_until_configured_and_passwords_keep_working(client):
    factories.UserFactory(username="alice")
    assert client.get(reverse("oidc_authentication_init")).status_code == 404
    assert "Sign in with" not in client.get(reverse("login")).content.decode()
    assert client.login(username="alice", password="signoff-demo")


def test_the_sign_in_page_offers_sso_when_configured(client, provider):
    with override_settings(**provider.settings(), OIDC_PROVIDER_NAME="Okta"):
        assert "Sign in with Okta" in client.get(reverse("login")).content.decode()
