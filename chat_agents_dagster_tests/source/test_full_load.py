"""A full load of a world that crosses every page boundary equals the sandbox's truth, exactly,
and costs exactly the requests the API's page sizes make necessary."""

import math
from collections.abc import Iterator
from typing import Any

import dlt
import pytest

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster.source import RunStats
from chat_agents_dagster.source.configuration import VERSIONS_PAGE_SIZE_MAX
from chat_agents_dagster_tests.helpers import (
    API_KEY,
    isolate_environment,
    listing_requests,
    load,
    point_at,
    query,
)

AGENTS = 1_050  # more than the largest page the API gives (1,000): the listing pages at any size
HEAVY_VERSIONS = 130  # more than one 100-version page


@pytest.fixture(scope="module")
def big_load(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[World, SandboxServer, dlt.Pipeline, RunStats]]:
    directory = tmp_path_factory.mktemp("big_load")
    world = World.generate(
        agents=AGENTS, seed=3, max_versions=4, heavy_agents=1, heavy_versions=HEAVY_VERSIONS
    )
    with pytest.MonkeyPatch.context() as patch:
        isolate_environment(directory, patch.setenv, patch.delenv)
        patch.chdir(directory)
        with SandboxServer(world, SandboxConfig(api_key=API_KEY), port=0) as server:
            point_at(server, patch.setenv)
            pipeline, stats = load()
            yield world, server, pipeline, stats


@pytest.fixture(autouse=True)
def isolated() -> None:
    """Replaces the per-test isolation: this module's tests share big_load's directory and env."""


def keys(pipeline: dlt.Pipeline, table: str, *names: str) -> set[tuple[Any, ...]]:
    return set(query(pipeline, f"SELECT {', '.join(names)} FROM {{dataset}}.{table}"))


def count(pipeline: dlt.Pipeline, table: str) -> int:
    return int(query(pipeline, f"SELECT COUNT(*) FROM {{dataset}}.{table}")[0][0])


def test_every_agent_is_loaded_once_across_listing_pages(big_load: Any) -> None:
    world, _, pipeline, _ = big_load
    truth = {(agent["id"],) for agent in world.agents()}
    assert len(truth) == AGENTS
    assert keys(pipeline, "agents", "id") == truth
    assert count(pipeline, "agents") == AGENTS
    assert keys(pipeline, "agent_detail", "id") == truth
    assert count(pipeline, "agent_detail") == AGENTS


def test_every_version_and_version_detail_is_loaded_once(big_load: Any) -> None:
    world, _, pipeline, _ = big_load
    truth = {(a["id"], v["version"]) for a in world.agents() for v in world.versions(a["id"])}
    assert max(len(world.versions(a["id"])) for a in world.agents()) == HEAVY_VERSIONS
    for table in ("agent_versions", "agent_version_detail"):
        assert keys(pipeline, table, "agent_id", "version") == truth
        assert count(pipeline, table) == len(truth)


def test_every_alias_is_loaded_with_its_target(big_load: Any) -> None:
    world, _, pipeline, _ = big_load
    truth = {
        (a["id"], alias["alias"], alias["version"])
        for a in world.agents()
        for alias in world.aliases(a["id"])
    }
    assert truth
    assert keys(pipeline, "agent_aliases", "agent_id", "alias", "version") == truth
    assert count(pipeline, "agent_aliases") == len(truth)


def test_the_load_makes_exactly_the_requests_the_page_sizes_require(big_load: Any) -> None:
    world, server, _, stats = big_load
    agents = world.agents()
    version_counts = [len(world.versions(a["id"])) for a in agents]
    expected = {
        "GET /v1/agents/pages": listing_requests(server),
        "GET /v1/agents/{agent_id}": len(agents),
        "GET /v1/agents/{agent_id}/versions": sum(
            math.ceil(n / VERSIONS_PAGE_SIZE_MAX) for n in version_counts
        ),
        "GET /v1/agents/{agent_id}/aliases": len(agents),
        "GET /v1/agents/{agent_id}/versions/{version}": sum(version_counts),
    }
    assert {route: server.stats.count(route) for route in expected} == expected
    assert server.stats.count("GET /v1/agents") == 0
    assert stats.total == server.stats.total() == sum(expected.values())
