"""The sandbox server: lifecycle, the per-request check pipeline and the test-facing knobs."""

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from chat_agents_dagster.sandbox import routes
from chat_agents_dagster.sandbox.config import SandboxConfig
from chat_agents_dagster.sandbox.handler import SandboxHTTPServer
from chat_agents_dagster.sandbox.knobs import Failure, Hook, Knobs, RateWindow, retry_after
from chat_agents_dagster.sandbox.responses import (
    Reply,
    injected,
    json_reply,
    not_found,
    rate_limited,
    server_error,
    unauthorized,
)
from chat_agents_dagster.sandbox.stats import LoggedRequest, Stats
from chat_agents_dagster.sandbox.world import World

logger = logging.getLogger("chat_agents_dagster.sandbox")


def _authorized(header: str | None, api_key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), api_key)


@dataclass
class Workspace:
    """A Mistral workspace: its agents, and its own rate-limit window."""

    world: World
    window: RateWindow = field(default_factory=RateWindow)


class SandboxServer:
    """A Mistral-compatible Agents API over loopback, serving `world` as `config` dictates.

    `world` is the workspace of `config.api_key`; `add_workspace` adds another, with its own key:
    as with Mistral's keys, a key sees only its workspace's agents, and `config.rps_limit` holds
    for each workspace apart. Failures injected by `fail_next` and the like hit whichever
    workspace's request comes next.

    Binds on construction (port 0 picks a free one); `start()` serves from a daemon thread and
    `stop()` also closes idle keep-alive connections. `config` may be changed while running.
    """

    def __init__(
        self,
        world: World,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world
        self.config = config if config is not None else SandboxConfig()
        self._default = Workspace(world)
        self._workspaces: dict[str, Workspace] = {}
        self.stats = Stats()
        self._knobs = Knobs(self.config.seed)
        self._stopping = threading.Event()  # releases connections held by hang_next
        self._httpd = SandboxHTTPServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> "SandboxServer":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
            logger.debug("sandbox serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_workspace(self, api_key: str, world: World) -> None:
        """Serve `world` to requests bearing `api_key` (while `config.api_key` is set)."""
        if api_key == self.config.api_key or api_key in self._workspaces:
            raise ValueError("each workspace needs a key of its own")
        self._workspaces[api_key] = Workspace(world)

    def fail_next(
        self,
        n: int,
        status: int = 503,
        route: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        retry_after_s: float = 1.0,
    ) -> None:
        """Answer the next `n` /v1 requests (those of `route`, a template such as
        "GET /v1/agents/{agent_id}", if given) with `status`, after the auth check.

        body None sends the status's usual body; str or bytes go out raw, anything else as
        JSON. headers None keeps the usual headers (a 429 gets Retry-After: `retry_after_s` in
        the configured format, computed when the answer is sent); given headers replace them.
        """
        if n > 0:
            self._knobs.add_failure(Failure(n, status, route, headers, body, retry_after_s))

    def hang_next(self, n: int, route: str | None = None, seconds: float = 30.0) -> None:
        """Take the next `n` /v1 requests (those of `route`, if given) and never answer them: hold
        each connection `seconds` (or until the server stops), then close it without a byte, as a
        server or proxy that stopped answering does."""
        if n > 0:
            self._knobs.add_failure(Failure(n, 0, route, None, None, hang_s=seconds))

    def cut_next(self, n: int, route: str | None = None, fraction: float = 0.5) -> None:
        """Answer the next `n` /v1 requests (those of `route`, if given) truly, but send only
        `fraction` of each body (its headers announce all of it), then close the connection."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError("fraction must be within [0, 1)")
        if n > 0:
            self._knobs.add_failure(Failure(n, 0, route, None, None, cut_fraction=fraction))

    def heal(self) -> None:
        """Forget every failure, hang and cut still pending from fail_next, hang_next and
        cut_next: the API is well again."""
        self._knobs.clear_failures()

    def on_request(self, route: str, callback: Hook) -> None:
        """Run `callback(server, path_params)` once, just before the next request of `route`
        (a template) is answered, after every other check has let it through."""
        self._knobs.add_hook(route, callback)

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        authorization: str | None,
        body: bytes,
    ) -> Reply:
        """Answer one request; the HTTP handler calls this from its connection thread."""
        if path.startswith("/_sandbox/"):
            return self._admin(method, path)
        if not path.startswith("/v1/"):
            return not_found()
        found = routes.match(method, path)
        arrived = time.time()
        self.stats.record_request(found.template)
        try:
            reply = self._pipeline(found, method, query, authorization, body)
        except Exception:
            logger.exception("sandbox failed answering %s", found.template)
            reply = server_error(500)
        # Recorded before the reply is written, so a client that reads stats right after its
        # answer sees it counted.
        if reply.status:
            self.stats.record_status(reply.status)
        target = f"{path}?{urlencode(query, doseq=True)}" if query else path
        retry = reply.headers.get("Retry-After")
        self.stats.log(LoggedRequest(arrived, found.template, target, reply.status, retry))
        if reply.hold_s:  # logged first: a test sees a held request while it is held
            self._stopping.wait(reply.hold_s)
        return reply

    def _pipeline(
        self,
        found: routes.Match,
        method: str,
        query: dict[str, list[str]],
        authorization: str | None,
        body: bytes,
    ) -> Reply:
        config = self.config
        workspace = self._workspace(authorization)
        if workspace is None:
            return unauthorized()
        world = workspace.world
        failure = self._knobs.take_failure(found.template)
        if failure is not None and failure.hang_s is not None:
            return Reply(0, hold_s=failure.hang_s)
        if failure is not None and failure.cut_fraction is not None:
            reply = routes.answer(found, routes.Request(found.params, query, body, world, config))
            return replace(reply, cut_at=int(len(reply.body) * failure.cut_fraction))
        if failure is not None:
            wait = retry_after(failure.retry_after_s, config.retry_after_format)
            return injected(failure.status, failure.headers, failure.body, wait)
        wait_s = workspace.window.admit(config.rps_limit)
        if wait_s is not None:
            return rate_limited(retry_after(wait_s, config.retry_after_format))
        fault = self._knobs.fault(config.fault_rate) if method == "GET" else None
        if fault is not None:
            return server_error(fault)
        if config.latency_s > 0:
            time.sleep(config.latency_s)
        for hook in self._knobs.take_hooks(found.template):
            hook(self, dict(found.params))
        request = routes.Request(found.params, query, body, world, config)
        return routes.answer(found, request)

    def _workspace(self, authorization: str | None) -> Workspace | None:
        """The workspace whose key the request bears; None: refused."""
        if self.config.api_key is None:
            return self._default
        if _authorized(authorization, self.config.api_key):
            return self._default
        for key, workspace in self._workspaces.items():
            if _authorized(authorization, key):
                return workspace
        return None

    def _admin(self, method: str, path: str) -> Reply:
        if (method, path) == ("GET", "/_sandbox/stats"):
            return json_reply(200, self.stats.snapshot())
        if (method, path) == ("POST", "/_sandbox/reset-stats"):
            self.stats.reset()
            return json_reply(200, self.stats.snapshot())
        return not_found()
