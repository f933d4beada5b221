"""Answers the sandbox sends, with the body shapes the live API uses for each status."""

import json
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

_SERVER_ERROR_MESSAGES = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


@dataclass(frozen=True)
class Reply:
    """An answer. `cut_at` sends only that many bytes of the body, under headers announcing all
    of it, then closes the connection: an answer cut off in transit. Status 0 is no answer: the
    connection is held `hold_s` seconds, then closed without a byte."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None
    hold_s: float = 0.0


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, {"Content-Type": "application/json"} | (headers or {}))


def no_content() -> Reply:
    return Reply(204)


def envelope(status: int, message: str, kind: str, code: str | None = None) -> Reply:
    body = {"object": "error", "message": message, "type": kind, "param": None}
    return json_reply(status, body | {"code": code or str(status)})


def not_found(message: str = "Not Found") -> Reply:
    return envelope(404, message, "not_found")


def unauthorized() -> Reply:
    return json_reply(401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex})


def rate_limited(retry_after: str | None) -> Reply:
    body = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited"}
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return json_reply(429, body | {"param": None, "code": "1300"}, headers)


def server_error(status: int) -> Reply:
    message = _SERVER_ERROR_MESSAGES.get(status, HTTPStatus(status).phrase)
    return envelope(status, message, "server_error")


def validation_error(
    loc: list[str], kind: str, msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> Reply:
    """FastAPI's 422 shape."""
    item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return json_reply(422, {"detail": [item]})


def default_error(status: int, retry_after: str) -> Reply:
    """The answer for an injected failure when the test gives no body of its own."""
    if status == 401:
        return unauthorized()
    if status == 404:
        return not_found()
    if status == 422:
        return validation_error(["query"], "value_error", "Injected validation error", None)
    if status == 429:
        return rate_limited(retry_after)
    if status >= 500:
        return server_error(status)
    return envelope(status, HTTPStatus(status).phrase, "invalid_request_error")


def injected(status: int, headers: dict[str, str] | None, body: Any, retry_after: str) -> Reply:
    """The answer for a `fail_next` failure. body None gives the status's usual body; bytes or
    str go out raw as text, anything else as JSON. headers None keeps the usual headers (a 429
    gets a Retry-After of one second); given headers replace all but Content-Type."""
    if body is None:
        reply = default_error(status, retry_after)
    elif isinstance(body, str | bytes):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        reply = Reply(status, raw, {"Content-Type": "text/plain; charset=utf-8"})
    else:
        reply = json_reply(status, body)
    if headers is None:
        return reply
    overridden = {k.lower() for k in headers}
    kept = {k: v for k, v in reply.headers.items() if k == "Content-Type"}
    kept = {} if "content-type" in overridden else kept
    return Reply(status, reply.body, kept | headers)
