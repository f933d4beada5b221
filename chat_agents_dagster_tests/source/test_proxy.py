"""The client reads requests' environment settings once per run (api.py turns `trust_env` off for
speed): proxies from HTTP_PROXY and NO_PROXY and a CA bundle from REQUESTS_CA_BUNDLE must still
apply, as they would with requests' defaults. The proxy is a real forwarding proxy on loopback."""

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster_tests.helpers import error_chain, load, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.requested: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardingProxy
    _direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requested.append(self.path)  # a proxied request names the whole URL
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            with self._direct.open(urllib.request.Request(self.path, headers=headers)) as answer:
                status, answer_headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, body = error.code, error.headers, error.read()
        self.send_response(status)
        for name in ("Content-Type", "Retry-After"):
            if answer_headers.get(name):
                self.send_header(name, answer_headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_request_goes_through_the_proxy_named_by_http_proxy(
    sandbox: SandboxServer, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    pipeline, stats = load()
    assert stats.total > 0
    assert len(proxy.requested) == stats.total == sandbox.stats.snapshot()["total"]
    assert all(path.startswith(sandbox.base_url) for path in proxy.requested)
    assert_equals_truth(pipeline, sandbox.world)


def test_no_proxy_sends_the_requests_for_its_hosts_directly(
    sandbox: SandboxServer, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    pipeline, stats = load()
    assert stats.total == sandbox.stats.snapshot()["total"] > 0
    assert proxy.requested == []
    assert_equals_truth(pipeline, sandbox.world)


def test_the_ca_bundle_named_by_requests_ca_bundle_is_used(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    # An https URL makes requests open the bundle before connecting; a bundle that is not there
    # fails the run naming it, which proves the variable was read.
    https_url = sandbox.base_url.replace("http://", "https://", 1)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", https_url)
    missing = str(tmp_path / "no-such-bundle.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    with pytest.raises(Exception) as failure:
        load()
    assert any(missing in str(error) for error in error_chain(failure.value))
    assert sandbox.stats.snapshot()["total"] == 0
