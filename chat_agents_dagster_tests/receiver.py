"""A notification receiver on loopback: what the alert channels post to in the tests.

It answers as the real services do: a JSON webhook takes any 2xx; Slack's Web API answers HTTP
200 with `{"ok": false, "error": ...}` when it refuses (a bad token: `invalid_auth`); a Teams
Workflows webhook takes any 2xx. `refuse(path, status)` makes one path fail, so a test can show
one channel's failure does not stop the others.
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_PATH = "/webhook"
SLACK_API_PATH = "/slack/api/"
SLACK_POST_PATH = SLACK_API_PATH + "chat.postMessage"
TEAMS_PATH = "/teams/workflow-hook"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """`start()` it; `url(path)` is where to post; `received(path)` what arrived there, in order."""

    def __init__(self, slack_token: str) -> None:
        self.slack_token = slack_token
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._refusals: dict[str, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def refuse(self, path: str, status: int) -> None:
        """Answer `status` on `path` from now on (for Slack's, a 200 saying `invalid_auth`)."""
        with self._lock:
            self._refusals[path] = status

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def _answer(self, request: Received) -> tuple[int, dict[str, Any] | str]:
        with self._lock:
            self._received.append(request)
            refusal = self._refusals.get(request.path)
        if request.path == SLACK_POST_PATH:
            authorized = request.headers.get("authorization") == f"Bearer {self.slack_token}"
            if refusal is not None or not authorized:
                return 200, {"ok": False, "error": "invalid_auth"}
            return 200, {"ok": True, "channel": request.json().get("channel"), "ts": "1.0"}
        if refusal is not None:
            return refusal, "refused by the test receiver"
        return 200, "1" if request.path == TEAMS_PATH else "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length).decode(),
                )
                status, answer = receiver._answer(request)
                data = (json.dumps(answer) if isinstance(answer, dict) else answer).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type",
                    "application/json" if isinstance(answer, dict) else "text/plain",
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read what arrived from `received()`."""

        return Handler
