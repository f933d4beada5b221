"""The /v1 routes: matching a request to its template, and answering it from the world."""

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from chat_agents_dagster.sandbox.config import SandboxConfig
from chat_agents_dagster.sandbox.responses import (
    Reply,
    json_reply,
    no_content,
    not_found,
    validation_error,
)
from chat_agents_dagster.sandbox.world import NotFoundError, World

DEFAULT_PAGE_SIZE = 20


@dataclass
class Request:
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    world: World
    config: SandboxConfig

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


class Invalid(Exception):
    """A request the live API would reject with 422; carries the answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _int_arg(req: Request, name: str, default: int | None) -> int:
    raw = req.arg(name)
    if raw is None:
        if default is None:
            raise Invalid(validation_error(["query", name], "missing", "Field required", None))
        return default
    try:
        return int(raw)
    except ValueError:
        msg = "Input should be a valid integer, unable to parse string as an integer"
        raise Invalid(validation_error(["query", name], "int_parsing", msg, raw)) from None


def _bounded(name: str, value: int, low: int, high: int | None) -> int:
    if value < low:
        msg = f"Input should be greater than or equal to {low}"
        raise Invalid(
            validation_error(["query", name], "greater_than_equal", msg, str(value), {"ge": low})
        )
    if high is not None and value > high:
        msg = f"Input should be less than or equal to {high}"
        raise Invalid(
            validation_error(["query", name], "less_than_equal", msg, str(value), {"le": high})
        )
    return value


def _page_size(req: Request, maximum: int) -> int:
    size = _int_arg(req, "page_size", DEFAULT_PAGE_SIZE)
    if req.config.strict_page_size:
        return _bounded("page_size", size, 1, maximum)
    clamp = req.config.clamp_page_size
    return max(1, size) if clamp is None else min(max(1, size), clamp)


def _json_body(req: Request) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"null")
    except ValueError:
        raise Invalid(
            validation_error(["body"], "json_invalid", "JSON decode error", None)
        ) from None
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object"
        raise Invalid(validation_error(["body"], "model_attributes_type", msg, body))
    return body


def encode_token(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, str]:
    try:
        created_at, agent_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(created_at), str(agent_id)
    except (ValueError, TypeError, binascii.Error):
        msg = "Invalid page token"
        raise Invalid(
            validation_error(["query", "page_token"], "value_error", msg, token)
        ) from None


def list_pages(req: Request) -> Reply:
    if not req.config.cursor_listing:
        return not_found()
    size = _page_size(req, 1000)
    token = req.arg("page_token")
    key = _decode_token(token) if token else None
    newest_first = req.config.listing_order == "newest_first"
    agents, more = req.world.agents_after(key, size, newest_first, copy=False)
    last = (agents[-1]["created_at"], agents[-1]["id"]) if agents else None
    # A token on the last page too, when configured: its page is then empty.
    more = more or req.config.token_on_last_page
    next_token = encode_token(last) if more and last else None
    return json_reply(200, {"object": "list", "data": agents, "next_page_token": next_token})


def list_agents(req: Request) -> Reply:
    page = _bounded("page", _int_arg(req, "page", 0), 0, None)
    size = _page_size(req, 1000)
    newest_first = req.config.listing_order == "newest_first"
    return json_reply(200, req.world.agents_slice(page * size, size, newest_first, copy=False))


def get_agent(req: Request) -> Reply:
    agent_id, ref = req.params["agent_id"], req.arg("agent_version")
    if ref is None:
        agent = req.world.agent(agent_id, copy=False)
        return not_found(f"Agent {agent_id} not found") if agent is None else json_reply(200, agent)
    number = req.world.resolve_version(agent_id, ref)
    snapshot = None if number is None else req.world.version(agent_id, number, copy=False)
    if snapshot is None:
        return not_found(f"Version {ref} of agent {agent_id} not found")
    return json_reply(200, snapshot)


def list_versions(req: Request) -> Reply:
    page = _bounded("page", _int_arg(req, "page", 0), 0, None)
    size = _page_size(req, 100)
    newest_first = req.config.versions_order == "newest_first"
    versions = req.world.versions_slice(
        req.params["agent_id"], page * size, size, newest_first, copy=False
    )
    return json_reply(200, versions)


def get_version(req: Request) -> Reply:
    agent_id, raw = req.params["agent_id"], req.params["version"]
    snapshot = req.world.version(agent_id, int(raw), copy=False) if raw.isdigit() else None
    if snapshot is None:
        return not_found(f"Version {raw} of agent {agent_id} not found")
    return json_reply(200, snapshot)


def list_aliases(req: Request) -> Reply:
    return json_reply(200, req.world.aliases(req.params["agent_id"], copy=False))


def create_agent(req: Request) -> Reply:
    body = _json_body(req)
    for name in ("model", "name"):
        if not isinstance(body.get(name), str):
            raise Invalid(validation_error(["body", name], "missing", "Field required", body))
    return json_reply(200, req.world.create_agent(**body))


def update_agent(req: Request) -> Reply:
    return json_reply(200, req.world.update_agent(req.params["agent_id"], **_json_body(req)))


def delete_agent(req: Request) -> Reply:
    req.world.delete_agent(req.params["agent_id"])
    return no_content()


def switch_version(req: Request) -> Reply:
    version = _int_arg(req, "version", None)
    touch = req.config.switch_moves_updated_at
    return json_reply(200, req.world.switch_version(req.params["agent_id"], version, touch))


def put_alias(req: Request) -> Reply:
    alias, version = req.arg("alias"), _int_arg(req, "version", None)
    if alias is None:
        raise Invalid(validation_error(["query", "alias"], "missing", "Field required", None))
    try:
        touch, restamp = (
            req.config.alias_moves_updated_at,
            req.config.alias_put_moves_alias_updated_at,
        )
        moved = req.world.set_alias(req.params["agent_id"], alias, version, touch, restamp)
        return json_reply(200, moved)
    except ValueError as error:
        loc = ["query", "alias"]
        raise Invalid(validation_error(loc, "string_pattern_mismatch", str(error), alias)) from None


def delete_alias(req: Request) -> Reply:
    alias = req.arg("alias")
    if alias is None:
        raise Invalid(validation_error(["query", "alias"], "missing", "Field required", None))
    req.world.delete_alias(req.params["agent_id"], alias, req.config.alias_moves_updated_at)
    return no_content()


Handler = Callable[[Request], Reply]
_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/agents/pages", list_pages),
    ("GET", "/v1/agents", list_agents),
    ("POST", "/v1/agents", create_agent),
    ("GET", "/v1/agents/{agent_id}", get_agent),
    ("PATCH", "/v1/agents/{agent_id}", update_agent),
    ("DELETE", "/v1/agents/{agent_id}", delete_agent),
    ("PATCH", "/v1/agents/{agent_id}/version", switch_version),
    ("GET", "/v1/agents/{agent_id}/versions", list_versions),
    ("GET", "/v1/agents/{agent_id}/versions/{version}", get_version),
    ("GET", "/v1/agents/{agent_id}/aliases", list_aliases),
    ("PUT", "/v1/agents/{agent_id}/aliases", put_alias),
    ("DELETE", "/v1/agents/{agent_id}/aliases", delete_alias),
]
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), fn)
    for method, path, fn in _ROUTES
    for template in [f"{method} {path}"]
]


@dataclass(frozen=True)
class Match:
    template: str
    handler: Handler | None
    params: dict[str, str]


def match(method: str, path: str) -> Match:
    """The first route matching; unmatched requests share one template so stats stay small."""
    for route_method, template, pattern, handler in _COMPILED:
        found = pattern.match(path) if route_method == method else None
        if found:
            return Match(template, handler, {k: unquote(v) for k, v in found.groupdict().items()})
    return Match(f"{method} (unmatched)", None, {})


def answer(found: Match, req: Request) -> Reply:
    if found.handler is None:
        return not_found()
    try:
        return found.handler(req)
    except Invalid as invalid:
        return invalid.reply
    except NotFoundError as missing:
        return not_found(str(missing))
    except ValueError as error:
        return validation_error(["body"], "value_error", str(error), None)
