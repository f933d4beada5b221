"""HTTP plumbing: reading requests off keep-alive connections and writing replies."""

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from chat_agents_dagster.sandbox.responses import Reply, json_reply

if TYPE_CHECKING:
    from chat_agents_dagster.sandbox.server import SandboxServer

logger = logging.getLogger("chat_agents_dagster.sandbox")


class SandboxHTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stopping closes idle keep-alive sockets too; otherwise
    their handler threads would keep answering from a stopped server."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: "SandboxServer") -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops a keep-alive connection (a pipeline finishing, a benchmark run
        # ending) is normal here; socketserver would print a traceback for each one. Anything
        # else is still logged as an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("Connection from %s ended abruptly", client_address)
            return
        logger.exception("Error while answering %s", client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, each keep-alive answer would wait
    # for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # The request's end cannot be found without a chunk parser; close instead of
            # misreading the next request on this connection.
            self.close_connection = True
            self._send(json_reply(411, {"detail": "Content-Length required"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._send(json_reply(400, {"detail": "Invalid Content-Length"}))
            return
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        authorization = self.headers.get("Authorization")
        reply = self.server.sandbox.handle(self.command, parts.path, query, authorization, body)
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, reply: Reply) -> None:
        if reply.status == 0:  # no answer: close without a byte
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.cut_at is not None:
            self.close_connection = True
        if reply.body and reply.status != 204:
            self.wfile.write(reply.body[: reply.cut_at])

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Path only: query strings and headers stay out of logs. A request line that could not be
        # parsed (a TLS handshake sent to this plain-HTTP server) leaves no path.
        path = urlsplit(getattr(self, "path", "")).path
        logger.debug("%s %s -> %s", self.command, path or "(unparsed request)", code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox http: " + format, *args)
