"""Listings that do not flatter the client, through Dagster: offset pages that shift while they
are read (newest first, as the sandbox serves them), a token on the cursor listing's last page,
a server that repeats a token, and a version switch that leaves `updated_at` alone."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster_tests.dagster_helpers import check_results, definitions, run_job
from chat_agents_dagster_tests.helpers import listing_requests, point_at
from chat_agents_dagster_tests.warehouse import (
    assert_equals_truth,
    assert_no_duplicate_keys,
    current_rows,
    deleted,
    snapshot,
)

LEGACY = "GET /v1/agents"
CURSOR = "GET /v1/agents/pages"
DETAIL = "GET /v1/agents/{agent_id}"
PAGE = 10


def at_request(server: SandboxServer, route: str, nth: int, action: Callable[[World], Any]) -> None:
    """`action(world)` just before the sandbox answers its `nth` request of `route`."""
    seen = [0]

    def hook(server: SandboxServer, _: dict[str, str]) -> None:
        seen[0] += 1
        if seen[0] < nth:
            server.on_request(route, hook)
        else:
            action(server.world)

    server.on_request(route, hook)


@pytest.fixture
def legacy(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    """A server with only the offset page list, newest first, read ten agents a page."""
    server = start_sandbox(World.generate(agents=35, seed=8, max_versions=2), cursor_listing=False)
    assert server.config.listing_order == "newest_first"
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__AGENTS_PAGE_SIZE", str(PAGE))
    return server


def passed(result: dg.ExecuteInProcessResult) -> bool:
    return result.success and all(e.passed for e in check_results(result).values())


def test_an_agent_created_during_an_offset_scan_makes_no_duplicate_and_loads_next_run(
    legacy: SandboxServer,
) -> None:
    world = legacy.world
    created: list[str] = []
    at_request(
        legacy,
        LEGACY,
        2,
        lambda w: created.append(
            w.create_agent(name="Mid-scan", model="mistral-small-latest")["id"]
        ),
    )
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    first = run_job(defs, instance)

    assert passed(first)
    pipeline = make_pipeline()
    assert_no_duplicate_keys(pipeline)
    # The new agent went to the head of the list after the head was read: it waits for the next
    # run, and the agent its arrival pushed onto the next page was loaded once.
    assert {row[0] for row in current_rows(pipeline, "agents", "id")} == {
        a["id"] for a in world.agents()
    } - set(created)

    second = run_job(defs, instance)

    assert passed(second)
    assert_equals_truth(make_pipeline(), world)


def test_an_agent_deleted_during_an_offset_scan_never_gets_a_live_agent_marked_deleted(
    legacy: SandboxServer,
) -> None:
    world = legacy.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert passed(run_job(defs, instance))
    newest = world.agents()[-1]["id"]  # on the first page: newest first
    # Deleted while the third page is read: every agent after it moves up one place, and the one
    # that was first on the third page slides onto the second, already read.
    at_request(legacy, LEGACY, 3, lambda w: w.delete_agent(newest))
    legacy.stats.reset()

    night = run_job(defs, instance)

    assert night.success
    pipeline = make_pipeline()
    assert deleted(pipeline, "agents", "id") == set()
    listed_ids = {row[0] for row in current_rows(pipeline, "agents", "id")}
    assert listed_ids == {a["id"] for a in world.agents()} | {newest}
    # The skipped agent was asked for by id (nothing else changed); the deleted one, listed
    # before it went, is marked on the next run.
    assert legacy.stats.count(DETAIL) == 1

    after = run_job(defs, instance)

    assert passed(after)
    assert_equals_truth(make_pipeline(), world)
    assert deleted(make_pipeline(), "agents", "id") == {newest}


@pytest.mark.parametrize("token_on_last_page", [True, False])
def test_the_cursor_listing_ends_on_a_null_token_or_on_an_empty_page(
    start_sandbox: Callable[..., SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
    token_on_last_page: bool,
) -> None:
    server = start_sandbox(
        World.generate(agents=25, seed=9, max_versions=2), token_on_last_page=token_on_last_page
    )
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__AGENTS_PAGE_SIZE", str(PAGE))

    result = run_job(definitions(), dg.DagsterInstance.ephemeral())

    assert passed(result)
    assert server.stats.count(CURSOR) == listing_requests(server, PAGE)
    assert_equals_truth(make_pipeline(), server.world)


def test_a_cursor_that_repeats_a_token_fails_the_run_naming_the_endpoint_and_loads_nothing(
    world_server: SandboxServer, isolated: Path
) -> None:
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert passed(run_job(defs, instance))
    before = snapshot(isolated / "warehouse.duckdb")
    page = {"object": "list", "data": world_server.world.agents()[:2], "next_page_token": "again"}
    world_server.fail_next(3, status=200, route=CURSOR, body=page)
    world_server.stats.reset()

    result = run_job(defs, instance)

    assert not result.success
    failure = result.failure_data_for_node("chat_agents_load")
    assert failure is not None and failure.error is not None
    message = failure.error.to_string()
    assert "GET /agents/pages gave a next_page_token it had given before" in message
    assert world_server.stats.count(CURSOR) == 2
    assert snapshot(isolated / "warehouse.duckdb") == before


def test_a_version_switch_that_leaves_updated_at_alone_still_refreshes_the_detail(
    world_server: SandboxServer,
) -> None:
    world = world_server.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert passed(run_job(defs, instance))
    agent = next(a for a in world.agents() if a["version"] > 0)
    switched = world.switch_version(agent["id"], 0)
    assert switched["updated_at"] == agent["updated_at"]
    world_server.stats.reset()

    night = run_job(defs, instance)

    assert passed(night)
    assert world_server.stats.count(DETAIL) == 1
    pipeline = make_pipeline()
    assert (agent["id"], 0) in current_rows(pipeline, "agent_detail", "id", "version")
    assert_equals_truth(pipeline, world)
