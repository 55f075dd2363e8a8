"""A stand-in for GitHub's and GitLab's APIs: a real HTTP server on 127.0.0.1 that records
every request and answers like the real ones (an installation token, the review accepted)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTALLATION_TOKEN = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
TOKEN_PATH = re.compile(r"^/app/installations/(\d+)/access_tokens$")


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class ProviderApi:
    """Answers token exchanges with 201 and a token, everything else with `status`."""

    status: int = 204
    token_status: int = 201
    calls: list[Call] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> ProviderApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.calls.append(Call(self.path, dict(self.headers), body))
                if TOKEN_PATH.match(self.path):
                    self._answer(
                        api.token_status,
                        {"token": INSTALLATION_TOKEN, "expires_at": "2026-12-07T06:00:00Z"},
                    )
                else:
                    self._answer(api.status, {} if api.status != 204 else None)

            def _answer(self, status: int, document: dict | None) -> None:
                data = json.dumps(document).encode() if document is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
