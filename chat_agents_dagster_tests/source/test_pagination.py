"""Pagination is exact: the legacy listing when the cursor listing is missing, servers that clamp
page sizes, and no wasted request where the count is known."""

import math
from collections.abc import Callable

import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source.configuration import AGENTS_PAGE_SIZE
from chat_agents_dagster_tests.helpers import listing_requests, load, point_at, query


def agent_ids(world: World) -> set[tuple[str]]:
    return {(agent["id"],) for agent in world.agents()}


@pytest.mark.parametrize(
    ("agents", "page_size", "legacy_requests"),
    [
        (45, 20, 3),  # 20, 20, 5: the short last page ends the list
        (40, 20, 3),  # 20, 20, then an empty page: the only way to know
        (7, 20, 2),  # 7 may be a clamped page: one more request to be sure
    ],
)
def test_a_server_without_the_cursor_listing_falls_back_to_the_legacy_list(
    start_sandbox: Callable[..., SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
    agents: int,
    page_size: int,
    legacy_requests: int,
) -> None:
    world = World.generate(agents=agents, seed=11, max_versions=2)
    server = start_sandbox(world, cursor_listing=False)
    point_at(server, monkeypatch.setenv)

    pipeline, _ = load(agents_page_size=page_size)

    assert set(query(pipeline, "SELECT id FROM {dataset}.agents")) == agent_ids(world)
    assert server.stats.count("GET /v1/agents/pages") == 1
    assert server.stats.count("GET /v1/agents") == legacy_requests


def test_a_server_that_clamps_page_sizes_is_still_read_to_the_end(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World.generate(agents=45, seed=5, max_versions=3, heavy_agents=1, heavy_versions=23)
    server = start_sandbox(world, cursor_listing=False, strict_page_size=False, clamp_page_size=10)
    point_at(server, monkeypatch.setenv)

    pipeline, _ = load(agents_page_size=1000, versions_page_size=100)

    versions = {(a["id"], v["version"]) for a in world.agents() for v in world.versions(a["id"])}
    assert set(query(pipeline, "SELECT id FROM {dataset}.agents")) == agent_ids(world)
    assert set(query(pipeline, "SELECT agent_id, version FROM {dataset}.agent_versions")) == (
        versions
    )
    # 10, 10, 10, 10, 5: the fifth page is shorter than the ones before it, so it is the last.
    assert server.stats.count("GET /v1/agents") == 5
    # The heavy agent's 23 versions take 10, 10, 3; every other agent fits in one clamped page.
    assert server.stats.count("GET /v1/agents/{agent_id}/versions") == len(world.agents()) + 2


def test_version_listing_stops_when_the_agents_version_count_is_reached(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World.generate(agents=3, seed=2, max_versions=1, heavy_agents=1, heavy_versions=200)
    server = start_sandbox(world)
    point_at(server, monkeypatch.setenv)

    pipeline, _ = load(versions_page_size=100)

    counts = [len(world.versions(a["id"])) for a in world.agents()]
    assert 200 in counts
    # Exactly 2 pages for 200 versions: no empty third page is asked for.
    assert server.stats.count("GET /v1/agents/{agent_id}/versions") == sum(
        math.ceil(n / 100) for n in counts
    )
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agent_versions")[0][0] == sum(counts)


def test_agents_are_listed_a_hundred_at_a_time_unless_configured(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing page is held while its agents' children are fetched: the default keeps it small."""
    world = World.generate(agents=250, seed=3, max_versions=1)
    server = start_sandbox(world)
    point_at(server, monkeypatch.setenv)

    pipeline, _ = load()

    assert set(query(pipeline, "SELECT id FROM {dataset}.agents")) == agent_ids(world)
    listing = server.stats.requests("GET /v1/agents/pages")
    assert len(listing) == listing_requests(server, AGENTS_PAGE_SIZE)
    assert all(f"page_size={AGENTS_PAGE_SIZE}" in request.target for request in listing)
