"""The sandbox API over real loopback HTTP: generation, listing, knobs, writes, stats, CLI."""

import email.utils
import itertools
import json
import math
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster.sandbox.content import COMPLETION_KEYS

KEY = "sandbox-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ALIAS = re.compile(r"^[a-z]([a-z0-9_-]*[a-z0-9])?$")
AGENT_ID = re.compile(r"^ag_[0-9a-f]{32}$")
BOOKKEEPING = {"version", "versions", "updated_at", "version_message"}


def make_world() -> World:
    return World.generate(
        agents=24, seed=3, max_versions=4, heavy_agents=1, heavy_versions=130, max_aliases=3
    )


@contextmanager
def serve(world: World | None = None, **config: Any) -> Iterator[SandboxServer]:
    with SandboxServer(world or make_world(), SandboxConfig(**config)) as server:
        yield server


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with serve() as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


def listed(server: SandboxServer) -> list[str]:
    """The world's agent ids in the order the server's listings give them."""
    ids_oldest_first = ids(server.world.agents())
    if server.config.listing_order == "newest_first":
        return ids_oldest_first[::-1]
    return ids_oldest_first


def ids(agents: list[dict[str, Any]]) -> list[str]:
    return [a["id"] for a in agents]


def content_of(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k not in BOOKKEEPING}


def varieties(world: World) -> set[str]:
    found: set[str] = set()
    for agent in world.agents():
        for tool in agent["tools"]:
            found.add(f"tool:{tool['type']}")
            if tool.get("tool_configuration"):
                found.add("tool_configuration")
            if tool["type"] == "connector":
                auth = tool["authorization"]
                found.add(f"connector_auth:{auth['type'] if auth else None}")
        text = agent["instructions"]
        found.add("tools:empty" if not agent["tools"] else "tools:some")
        found.add("instructions:null" if text is None else "instructions:text")
        if text and len(text) >= 2048:
            found.add("instructions:long")
        for label, pattern in [("emoji", "[\U0001f300-\U0001faff]"), ("cjk", "[\u4e00-\u9fff]")]:
            if text and re.search(pattern, text):
                found.add(f"instructions:{label}")
        if text and re.search("[\u0590-\u06ff]", text):
            found.add("instructions:rtl")
        args = agent["completion_args"]
        if (args["response_format"] or {}).get("type") == "json_schema":
            found.add("response_format:json_schema")
        found.add(f"stop:{type(args['stop']).__name__}")
        if args["prediction"]:
            found.add("prediction")
        for rail in agent["guardrails"] or []:
            found.update(
                f"guardrails:{k}" for k in ("moderation_llm_v1", "moderation_llm_v2") if rail[k]
            )
        found.add("guardrails:null" if agent["guardrails"] is None else "guardrails:list")
        found.add("handoffs:null" if agent["handoffs"] is None else "handoffs:list")
        found.add("metadata:null" if agent["metadata"] is None else "metadata:object")
        found.add("description:null" if agent["description"] is None else "description:text")
        found.add("owner_id:null" if agent["owner_id"] is None else "owner_id:text")
        found.add(f"source:{agent['source']}")
        found.add(f"deployment_chat:{agent['deployment_chat']}")
        if "labels" in agent:
            found.add("unknown_field")
        if len(agent["versions"]) > 1:
            found.add("multi_version")
        if agent["version"] < max(agent["versions"]):
            found.add("rolled_back")
        if world.aliases(agent["id"]):
            found.add("aliases")
    return found


EVERY_VARIETY = {
    *(
        f"tool:{t}"
        for t in [
            "function",
            "web_search",
            "web_search_premium",
            "code_interpreter",
            "image_generation",
            "document_library",
            "connector",
            "mcp_server",
        ]
    ),
    "tool_configuration",
    "connector_auth:api-key",
    "connector_auth:oauth2-token",
    "connector_auth:None",
    "tools:empty",
    "instructions:null",
    "instructions:long",
    "instructions:emoji",
    "instructions:cjk",
    "instructions:rtl",
    "response_format:json_schema",
    "stop:str",
    "stop:list",
    "stop:NoneType",
    "prediction",
    "guardrails:moderation_llm_v1",
    "guardrails:moderation_llm_v2",
    "guardrails:null",
    "handoffs:null",
    "handoffs:list",
    "metadata:null",
    "metadata:object",
    "description:null",
    "description:text",
    "owner_id:null",
    "source:api",
    "source:playground",
    "source:agent_builder_v1",
    "deployment_chat:True",
    "deployment_chat:False",
    "unknown_field",
    "multi_version",
    "rolled_back",
    "aliases",
}


def test_generation_is_deterministic_per_seed() -> None:
    def dump(world: World) -> str:
        rows = [(a, world.versions(a["id"]), world.aliases(a["id"])) for a in world.agents()]
        return json.dumps(rows, ensure_ascii=False)

    first = dump(World.generate(agents=30, seed=9, heavy_agents=1, heavy_versions=12))
    assert first == dump(World.generate(agents=30, seed=9, heavy_agents=1, heavy_versions=12))
    assert first != dump(World.generate(agents=30, seed=10, heavy_agents=1, heavy_versions=12))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_twenty_agents_cover_every_variety(seed: int) -> None:
    world = World.generate(agents=20, seed=seed)
    assert EVERY_VARIETY - varieties(world) == set()
    assert len({a["model"] for a in world.agents()}) >= 4


def test_world_invariants() -> None:
    world = make_world()
    agents = world.agents()
    assert len(agents) == 24 and len(set(ids(agents))) == 24
    assert [(a["created_at"], a["id"]) for a in agents] == sorted(
        (a["created_at"], a["id"]) for a in agents
    )
    for agent in agents:
        assert AGENT_ID.match(agent["id"]) and agent["object"] == "agent"
        assert TIMESTAMP.match(agent["created_at"]) and TIMESTAMP.match(agent["updated_at"])
        assert agent["created_at"] <= agent["updated_at"]
        assert list(agent["completion_args"]) == COMPLETION_KEYS
        snapshots = world.versions(agent["id"])
        assert agent["versions"] == list(range(len(snapshots)))
        assert [s["version"] for s in snapshots] == agent["versions"]
        # A snapshot is frozen when created: it lists the versions that existed then.
        assert [s["versions"] for s in snapshots] == [list(range(v + 1)) for v in agent["versions"]]
        assert snapshots[agent["version"]] | {"versions": agent["versions"]} == agent | {
            "updated_at": snapshots[agent["version"]]["updated_at"]
        }
        for older, newer in itertools.pairwise(snapshots):
            assert content_of(older) != content_of(newer)
            assert older["updated_at"] < newer["updated_at"]
        for alias in world.aliases(agent["id"]):
            assert ALIAS.match(alias["alias"]) and alias["version"] in agent["versions"]
    assert max(len(a["versions"]) for a in agents) == 130


def test_generation_scales() -> None:
    started = time.perf_counter()
    world = World.generate(agents=3000, seed=1, heavy_agents=3000, heavy_versions=5)
    assert time.perf_counter() - started < 5.0
    assert len(world) == 3000


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("token_on_last_page", [True, False])
@pytest.mark.parametrize("page_size", [5, 8, 24, 1000])
def test_cursor_listing_returns_each_agent_once(
    http: requests.Session, page_size: int, order: str, token_on_last_page: bool
) -> None:
    with serve(listing_order=order, token_on_last_page=token_on_last_page) as server:
        seen: list[str] = []
        pages: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": page_size}
        while True:
            body = http.get(f"{server.base_url}/agents/pages", params=params).json()
            assert body["object"] == "list"
            pages.append(body)
            seen += ids(body["data"])
            if body["next_page_token"] is None:
                break
            params["page_token"] = body["next_page_token"]
        assert seen == listed(server)
    full_pages = math.ceil(24 / page_size)
    assert len(pages) == full_pages + token_on_last_page
    assert all(page["data"] for page in pages[:full_pages])
    assert None not in [page["next_page_token"] for page in pages[:-1]]
    if token_on_last_page:  # the last page with agents has a token; its page is empty
        assert pages[-1]["data"] == [] and pages[full_pages - 1]["next_page_token"]


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_cursor_listing_survives_deletes_between_pages(http: requests.Session, order: str) -> None:
    with serve(listing_order=order) as server:
        expected = listed(server)
        first = http.get(f"{server.base_url}/agents/pages", params={"page_size": 10}).json()
        server.world.delete_agent(expected[3])
        params = {"page_size": 10, "page_token": first["next_page_token"]}
        second = http.get(f"{server.base_url}/agents/pages", params=params).json()
    assert ids(second["data"]) == expected[10:20]


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_legacy_listing_pages_exactly(http: requests.Session, order: str) -> None:
    with serve(listing_order=order) as server:
        pages = [
            http.get(f"{server.base_url}/agents", params={"page": p, "page_size": 5}).json()
            for p in range(6)
        ]
        assert [len(p) for p in pages] == [5, 5, 5, 5, 4, 0]
        assert [a["id"] for page in pages for a in page] == listed(server)
        assert len(http.get(f"{server.base_url}/agents").json()) == 20


def test_legacy_listing_pages_shift_when_an_agent_is_created_during_the_scan(
    server: SandboxServer, http: requests.Session
) -> None:
    assert server.config.listing_order == "newest_first"
    url = f"{server.base_url}/agents"
    first = ids(http.get(url, params={"page": 0, "page_size": 5}).json())
    server.world.create_agent(name="Newest", model="mistral-small-latest")
    second = ids(http.get(url, params={"page": 1, "page_size": 5}).json())
    assert second[0] == first[-1]  # pushed onto the next page: listed twice


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_versions_paginate_past_100(http: requests.Session, order: str) -> None:
    with serve(versions_order=order) as server:
        heavy = next(a for a in server.world.agents() if len(a["versions"]) == 130)
        url = f"{server.base_url}/agents/{heavy['id']}/versions"
        pages = [http.get(url, params={"page": p, "page_size": 100}).json() for p in range(3)]
        assert [len(p) for p in pages] == [100, 30, 0]
        numbers = list(range(130))[:: -1 if order == "newest_first" else 1]
        assert [s["version"] for s in pages[0] + pages[1]] == numbers
        assert pages[1][-1] == server.world.version(heavy["id"], numbers[-1])
        assert len(http.get(url).json()) == 20


def test_detail_by_version_number_and_alias(server: SandboxServer, http: requests.Session) -> None:
    world = server.world
    agent = next(a for a in world.agents() if world.aliases(a["id"]) and len(a["versions"]) > 1)
    url = f"{server.base_url}/agents/{agent['id']}"
    assert http.get(url).json() == agent
    assert http.get(url, params={"agent_version": "0"}).json() == world.version(agent["id"], 0)
    assert http.get(f"{url}/versions/0").json() == world.version(agent["id"], 0)
    for alias in world.aliases(agent["id"]):
        snapshot = http.get(url, params={"agent_version": alias["alias"]}).json()
        assert snapshot["version"] == alias["version"]
    assert http.get(f"{url}/aliases").json() == world.aliases(agent["id"])
    for missing in [
        http.get(url, params={"agent_version": "999"}),
        http.get(url, params={"agent_version": "no-such-alias"}),
        http.get(f"{url}/versions/999"),
        http.get(f"{server.base_url}/agents/ag_{'0' * 32}"),
        http.get(f"{server.base_url}/agents/ag_{'0' * 32}/aliases"),
    ]:
        assert missing.status_code == 404
        assert missing.json() | {"message": ""} == {
            "object": "error",
            "message": "",
            "type": "not_found",
            "param": None,
            "code": "404",
        }


def test_auth_is_required(server: SandboxServer) -> None:
    url = f"{server.base_url}/agents"
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}]:
        answer = requests.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["message"] == "Unauthorized" and answer.json()["request_id"]
    assert requests.get(url, headers=AUTH).status_code == 200
    assert requests.get(f"{server.root_url}/_sandbox/stats").status_code == 200
    server.config.api_key = None
    assert requests.get(url).status_code == 200


def test_each_key_sees_only_its_own_workspace(server: SandboxServer) -> None:
    other = World.generate(agents=5, seed=11, max_versions=2)
    server.add_workspace("sandbox-key-eu", other)

    def listing(key: str) -> list[str]:
        answer = requests.get(
            f"{server.base_url}/agents",
            params={"page_size": 100},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
        return sorted(agent["id"] for agent in answer.json())

    assert listing(KEY) == sorted(ids(server.world.agents()))
    assert listing("sandbox-key-eu") == sorted(ids(other.agents()))
    assert not set(listing(KEY)) & set(listing("sandbox-key-eu"))
    # An agent of one workspace is not found with the other's key.
    foreign = other.agents()[0]["id"]
    answer = requests.get(f"{server.base_url}/agents/{foreign}", headers=AUTH)
    assert answer.status_code == 404
    with pytest.raises(ValueError, match="key of its own"):
        server.add_workspace(KEY, other)


def test_the_rate_limit_holds_per_workspace() -> None:
    with serve(rps_limit=2) as server:
        server.add_workspace("sandbox-key-eu", World.generate(agents=3, seed=2))
        url = f"{server.base_url}/agents"
        eu = {"Authorization": "Bearer sandbox-key-eu"}
        assert [requests.get(url, headers=AUTH).status_code for _ in range(3)][-1] == 429
        # The other workspace's quota is untouched by the first one's burst.
        assert [requests.get(url, headers=eu).status_code for _ in range(2)] == [200, 200]


@pytest.mark.parametrize(
    ("path", "param", "value", "kind", "ctx"),
    [
        ("/agents/pages", "page_size", "0", "greater_than_equal", {"ge": 1}),
        ("/agents/pages", "page_size", "1001", "less_than_equal", {"le": 1000}),
        ("/agents", "page_size", "1001", "less_than_equal", {"le": 1000}),
        ("/agents", "page", "-1", "greater_than_equal", {"ge": 0}),
        ("/agents", "page_size", "abc", "int_parsing", None),
        ("/agents/{heavy}/versions", "page_size", "101", "less_than_equal", {"le": 100}),
    ],
)
def test_out_of_range_pages_are_422_when_strict(
    server: SandboxServer,
    http: requests.Session,
    path: str,
    param: str,
    value: str,
    kind: str,
    ctx: dict[str, int] | None,
) -> None:
    heavy = server.world.agents()[0]["id"]
    answer = http.get(server.base_url + path.format(heavy=heavy), params={param: value})
    assert answer.status_code == 422
    [detail] = answer.json()["detail"]
    assert (detail["type"], detail["loc"], detail["input"]) == (kind, ["query", param], value)
    assert detail.get("ctx") == ctx


def test_page_size_is_clamped_when_configured(http: requests.Session) -> None:
    with serve(strict_page_size=False, clamp_page_size=10) as server:
        legacy = http.get(f"{server.base_url}/agents", params={"page": 1, "page_size": 50}).json()
        assert ids(legacy) == listed(server)[10:20]
        cursor = http.get(f"{server.base_url}/agents/pages", params={"page_size": 50}).json()
        assert len(cursor["data"]) == 10 and cursor["next_page_token"]
        heavy = server.world.agents()[0]["id"]
        versions = http.get(f"{server.base_url}/agents/{heavy}/versions", params={"page_size": 100})
        assert len(versions.json()) == 10
    with serve(strict_page_size=False) as server:
        answer = http.get(f"{server.base_url}/agents", params={"page_size": 5000})
        assert answer.status_code == 200 and len(answer.json()) == 24


def test_legacy_only_answers_404_on_pages(http: requests.Session) -> None:
    with serve(cursor_listing=False) as server:
        answer = http.get(f"{server.base_url}/agents/pages")
        assert answer.status_code == 404 and answer.json()["type"] == "not_found"
        assert len(http.get(f"{server.base_url}/agents").json()) == 20


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_rps_limit_answers_429_with_retry_after(http: requests.Session, fmt: str) -> None:
    with serve(rps_limit=3, retry_after_format=fmt) as server:
        answers = [http.get(f"{server.base_url}/agents", params={"page_size": 1}) for _ in range(6)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and server.stats.count_status(429) == len(limited)
        assert limited[0].json() == {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
        }
        header = limited[0].headers["Retry-After"]
        if fmt == "seconds":
            assert header.isdigit() and int(header) >= 1
        else:
            wait = (email.utils.parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
            assert 0 < wait <= 3
        server.config.rps_limit = None
        assert http.get(f"{server.base_url}/agents").status_code == 200


def test_rejected_requests_do_not_extend_the_rate_window(http: requests.Session) -> None:
    with serve(rps_limit=2) as server:
        url = f"{server.base_url}/agents"
        assert [http.get(url).status_code for _ in range(2)] == [200, 200]
        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < 1.5 and 200 not in statuses:
            statuses.append(http.get(url).status_code)
            time.sleep(0.02)
        assert statuses[0] == 429 and statuses[-1] == 200


def test_fail_next_injects_failures(server: SandboxServer, http: requests.Session) -> None:
    url = f"{server.base_url}/agents"
    agent_id = server.world.agents()[0]["id"]
    server.fail_next(2)
    assert [http.get(url).status_code for _ in range(3)] == [503, 503, 200]
    server.fail_next(1, 429, route="GET /v1/agents/{agent_id}", headers={"Retry-After": "7"})
    assert http.get(url).status_code == 200
    limited = http.get(f"{url}/{agent_id}")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert limited.json()["code"] == "1300"
    assert http.get(f"{url}/{agent_id}").status_code == 200
    server.fail_next(1, 502, body="<html>bad gateway</html>")
    gateway = http.get(url)
    assert (gateway.status_code, gateway.text) == (502, "<html>bad gateway</html>")
    server.fail_next(1, 401, body={"detail": "Unauthorized"})
    assert http.get(url).json() == {"detail": "Unauthorized"}
    server.fail_next(1, 429)
    assert http.get(url).headers["Retry-After"] == "1"


def test_fault_rate_is_seeded_and_get_only(http: requests.Session) -> None:
    def statuses() -> list[int]:
        with serve(fault_rate=0.5, seed=5) as server:
            return [http.get(f"{server.base_url}/agents").status_code for _ in range(30)]

    first = statuses()
    assert first == statuses()
    assert 200 in first and {s for s in first if s != 200} <= {500, 502, 503}
    assert len(set(first)) > 2
    with serve(fault_rate=1.0) as server:
        assert http.get(f"{server.base_url}/agents").status_code >= 500
        created = http.post(f"{server.base_url}/agents", json={"model": "m", "name": "n"})
        assert created.status_code == 200


def test_on_request_fires_once_before_the_answer(
    server: SandboxServer, http: requests.Session
) -> None:
    calls: list[dict[str, str]] = []

    def delete_it(running: SandboxServer, params: dict[str, str]) -> None:
        calls.append(params)
        running.world.delete_agent(params["agent_id"])

    first, second = ids(server.world.agents())[:2]
    server.on_request("GET /v1/agents/{agent_id}", delete_it)
    assert http.get(f"{server.base_url}/agents").status_code == 200
    assert http.get(f"{server.base_url}/agents/{first}").status_code == 404
    assert http.get(f"{server.base_url}/agents/{second}").status_code == 200
    assert calls == [{"agent_id": first}]


def test_write_routes_change_reads(server: SandboxServer, http: requests.Session) -> None:
    url = f"{server.base_url}/agents"
    tools = [{"type": "web_search"}, {"type": "mcp_server", "server_url": "https://x"}]
    created = http.post(url, json={"model": "mistral-small-latest", "name": "New", "tools": tools})
    agent = created.json()
    assert created.status_code == 200 and agent["version"] == 0 and agent["versions"] == [0]
    assert agent["tools"] == tools and agent["completion_args"]["temperature"] is None
    assert ids(http.get(url, params={"page_size": 1000}).json())[0] == agent["id"]  # newest
    one = f"{url}/{agent['id']}"

    updated = http.patch(one, json={"instructions": "Be brief.", "model": "codestral-latest"})
    assert updated.json()["version"] == 1 and updated.json()["versions"] == [0, 1]
    assert updated.json()["updated_at"] > agent["updated_at"]
    versions = http.get(f"{one}/versions").json()  # newest first
    assert [v["instructions"] for v in versions] == ["Be brief.", None]
    assert versions[0]["model"] == "codestral-latest" and versions[0]["tools"] == tools

    switched = http.patch(f"{one}/version", params={"version": 0}).json()
    assert (switched["version"], switched["versions"]) == (0, [0, 1])
    # Neither a version switch nor an alias moves updated_at (the sandbox's default knobs).
    assert switched["updated_at"] == updated.json()["updated_at"]
    assert http.get(one).json()["instructions"] is None

    alias = http.put(f"{one}/aliases", params={"alias": "production", "version": "1"}).json()
    assert (alias["alias"], alias["version"]) == ("production", 1)
    repointed = http.put(f"{one}/aliases", params={"alias": "production", "version": "0"}).json()
    assert repointed["version"] == 0 and repointed["created_at"] == alias["created_at"]
    assert http.get(one, params={"agent_version": "production"}).json()["version"] == 0
    assert http.delete(f"{one}/aliases", params={"alias": "production"}).status_code == 204
    assert http.get(f"{one}/aliases").json() == []
    assert http.get(one).json()["updated_at"] == updated.json()["updated_at"]

    assert http.delete(one).status_code == 204
    assert http.get(one).status_code == 404
    assert agent["id"] not in ids(http.get(url, params={"page_size": 1000}).json())
    assert server.world.agent(agent["id"]) is None


def test_write_routes_validate(server: SandboxServer, http: requests.Session) -> None:
    url = f"{server.base_url}/agents"
    agent_id = server.world.agents()[1]["id"]
    missing = http.post(url, json={"model": "m"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "name"]
    bad_alias = http.put(f"{url}/{agent_id}/aliases", params={"alias": "Prod!", "version": "0"})
    assert bad_alias.status_code == 422
    assert http.patch(f"{url}/{agent_id}/version", params={"version": 99}).status_code == 404
    assert http.patch(f"{url}/{agent_id}/version").status_code == 422
    assert http.delete(f"{url}/{agent_id}/aliases", params={"alias": "nope"}).status_code == 404
    assert http.patch(f"{url}/{agent_id}", json={"id": "ag_x"}).status_code == 422
    assert http.delete(f"{url}/ag_missing").status_code == 404


def test_stats_count_by_route_and_status(server: SandboxServer, http: requests.Session) -> None:
    agent_id = server.world.agents()[0]["id"]
    http.get(f"{server.base_url}/agents")
    http.get(f"{server.base_url}/agents/{agent_id}")
    http.get(f"{server.base_url}/agents/{agent_id}/versions/0")
    http.get(f"{server.base_url}/agents/ag_missing")
    requests.get(f"{server.base_url}/agents/pages")
    http.get(f"{server.base_url}/nothing-here")
    assert server.stats.total() == 6
    assert server.stats.count("GET /v1/agents/{agent_id}") == 2
    assert server.stats.count("GET /v1/agents/{agent_id}/versions/{version}") == 1
    assert server.stats.count("GET /v1/agents/pages") == 1
    assert (server.stats.count_status(200), server.stats.count_status(404)) == (3, 2)
    assert server.stats.count_status(401) == 1
    snapshot = requests.get(f"{server.root_url}/_sandbox/stats").json()
    assert snapshot == server.stats.snapshot()
    assert snapshot["by_status"] == {"200": 3, "401": 1, "404": 2}
    assert requests.post(f"{server.root_url}/_sandbox/reset-stats").status_code == 200
    assert server.stats.snapshot() == {"total": 0, "by_route": {}, "by_status": {}, "window_s": 0.0}


def test_latency_is_added(server: SandboxServer, http: requests.Session) -> None:
    server.config.latency_s = 0.2
    started = time.perf_counter()
    assert http.get(f"{server.base_url}/agents").status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_stop_is_prompt_with_keepalive_connections(http: requests.Session) -> None:
    server = SandboxServer(make_world()).start()
    assert http.get(f"{server.base_url}/agents").status_code == 200
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 1.0
    with pytest.raises(requests.ConnectionError):
        http.get(f"{server.base_url}/agents")


def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "chat_agents_dagster.sandbox", "--port", "0"]
    command += ["--agents", "5", "--seed", "2", "--api-key", "cli-key", "--log-level", "WARNING"]
    command += ["--workspace", "eu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready, "the CLI printed no URL"
        base_url = process.stdout.readline().strip()
        assert re.match(r"^http://127\.0\.0\.1:\d+/v1$", base_url)
        answer = requests.get(f"{base_url}/agents", headers={"Authorization": "Bearer cli-key"})
        assert ids(answer.json()) == ids(World.generate(agents=5, seed=2).agents())[::-1]
        # Another workspace, for its own key, seeded apart.
        eu = requests.get(f"{base_url}/agents", headers={"Authorization": "Bearer cli-key-eu"})
        assert ids(eu.json()) == ids(World.generate(agents=5, seed=3).agents())[::-1]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_min_versions_sets_the_version_count_range() -> None:
    def dump(world: World) -> str:
        rows = [(a, world.versions(a["id"]), world.aliases(a["id"])) for a in world.agents()]
        return json.dumps(rows, ensure_ascii=False)

    # The default changes nothing: a seed generates the same world as without the parameter.
    assert dump(World.generate(agents=20, seed=5, min_versions=1)) == dump(
        World.generate(agents=20, seed=5)
    )
    exact = World.generate(agents=40, seed=5, min_versions=5, max_versions=5)
    assert {len(exact.versions(a["id"])) for a in exact.agents()} == {5}
    ranged = World.generate(agents=40, seed=5, min_versions=3, max_versions=6)
    assert {len(ranged.versions(a["id"])) for a in ranged.agents()} == {3, 4, 5, 6}
    heavy = World.generate(agents=4, seed=5, min_versions=2, heavy_agents=1, heavy_versions=9)
    assert [len(heavy.versions(a["id"])) for a in heavy.agents()].count(9) == 1
    with pytest.raises(ValueError, match="min_versions"):
        World.generate(agents=3, min_versions=4, max_versions=3)
    with pytest.raises(ValueError):
        World.generate(agents=3, min_versions=0)


def test_stats_measure_the_window_from_first_to_last_request(
    server: SandboxServer, http: requests.Session
) -> None:
    http.get(f"{server.base_url}/agents/pages")
    time.sleep(0.3)
    http.get(f"{server.base_url}/agents/pages")
    assert server.stats.snapshot()["window_s"] >= 0.3
    server.stats.reset()
    assert server.stats.snapshot()["window_s"] == 0


def test_a_request_line_it_cannot_parse_gets_a_400_not_a_dropped_connection(
    server: SandboxServer,
) -> None:
    # What an https client sends to this plain-HTTP server: a TLS ClientHello, no request line.
    with socket.create_connection((server.host, server.port), timeout=10) as connection:
        connection.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
        answer = connection.recv(4096)
    # No parsable request line means no HTTP version either: the error page comes without one.
    assert b"Error code: 400" in answer


def test_version_switches_and_alias_moves_can_be_made_to_move_updated_at(
    http: requests.Session,
) -> None:
    with serve(switch_moves_updated_at=True, alias_moves_updated_at=True) as server:
        agent = next(a for a in server.world.agents() if len(a["versions"]) > 1)
        one = f"{server.base_url}/agents/{agent['id']}"
        switched = http.patch(f"{one}/version", params={"version": 0}).json()
        assert switched["updated_at"] > agent["updated_at"]
        http.put(f"{one}/aliases", params={"alias": "canary", "version": "0"})
        assert http.get(one).json()["updated_at"] > switched["updated_at"]
