"""Through Dagster, as a user runs it: after a failed full refresh, a full refresh of some tables,
a subset run, or an organisation with no agents, the next ordinary run ends equal to the API,
fetching only what the warehouse lacks; each of the three full-refresh switches works."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.source.__main__ import main as chat_agents_load
from chat_agents_dagster.tables import DATASET_NAME, TABLES
from chat_agents_dagster_tests.dagster_helpers import (
    FULL_REFRESH,
    check_results,
    definitions,
    materializations,
    run_job,
)
from chat_agents_dagster_tests.helpers import point_at, query
from chat_agents_dagster_tests.warehouse import assert_equals_truth, deleted, snapshot

DETAIL = "GET /v1/agents/{agent_id}"
VERSIONS = "GET /v1/agents/{agent_id}/versions"
VERSION = "GET /v1/agents/{agent_id}/versions/{version}"
MEMORY = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"


def every_check_passed(result: dg.ExecuteInProcessResult) -> bool:
    evaluations = check_results(result)
    return bool(evaluations) and all(e.passed for e in evaluations.values())


def version_details(database: Path) -> int:
    with duckdb.connect(str(database), read_only=True) as connection:
        try:
            rows = connection.execute(
                f"SELECT COUNT(*) FROM {DATASET_NAME}.agent_version_detail"
            ).fetchall()
        except duckdb.CatalogException:
            return 0
    return int(rows[0][0])


def a_night(world: World) -> None:
    """New agents, new versions, an alias removed and an agent deleted."""
    agents = world.agents()
    for n in range(2):
        world.create_agent(name=f"Born tonight {n}", model="mistral-small-latest")
    for agent in agents[:3]:
        world.update_agent(agent["id"], instructions=f"Changed tonight: {agent['id']}")
    with_alias = next(a for a in agents[3:] if world.aliases(a["id"]))
    world.delete_alias(with_alias["id"], world.aliases(with_alias["id"])[0]["alias"])
    world.delete_agent(agents[-1]["id"])


def test_a_full_refresh_that_fails_in_the_load_step_is_repaired_by_the_next_ordinary_run(
    world_server: SandboxServer, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, database = world_server.world, isolated / "warehouse.duckdb"
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    a_night(world)
    monkeypatch.setenv(MEMORY, '{"memory_limit": "16MB"}')

    refresh = run_job(defs, instance, run_config=FULL_REFRESH)

    assert not refresh.success
    failure = refresh.failure_data_for_node("chat_agents_load")
    assert failure is not None and failure.error is not None
    message = failure.error.to_string()
    assert "DuckDB ran out of the memory" in message
    assert "This run was a full refresh" in message
    truth = sum(len(a["versions"]) for a in world.agents())
    left = version_details(database)
    assert left < truth  # the refresh dropped what it had not loaded again
    monkeypatch.delenv(MEMORY)
    world_server.stats.reset()

    repaired = run_job(defs, instance)

    assert repaired.success and every_check_passed(repaired), {
        key: e.metadata for key, e in check_results(repaired).items() if not e.passed
    }
    assert_equals_truth(make_pipeline(), world)
    # No second full refresh: the run fetched what the tables lacked.
    assert world_server.stats.count(VERSION) == truth - left


def test_a_full_refresh_of_one_table_leaves_the_others_and_their_records_alone(
    world_server: SandboxServer, isolated: Path
) -> None:
    world, database = world_server.world, isolated / "warehouse.duckdb"
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    before = snapshot(database)

    refresh = run_job(defs, instance, tables=["agents"], run_config=FULL_REFRESH)

    assert refresh.success and every_check_passed(refresh)
    assert set(materializations(refresh)) == {"agents"}
    after = snapshot(database)
    untouched = [
        name for name in before if not name.startswith(("agents", "_dlt")) and name in after
    ]
    assert untouched and all(before[name] == after[name] for name in untouched)
    removed: list[tuple[str, str]] = []
    for agent in world.agents():
        for alias in world.aliases(agent["id"])[:1]:
            if len(removed) < 12:
                world.delete_alias(agent["id"], alias["alias"])
                removed.append((agent["id"], alias["alias"]))
    updated = [world.update_agent(a["id"], description="Tonight") for a in world.agents()[:3]]
    world_server.stats.reset()

    night = run_job(defs, instance)

    assert night.success and every_check_passed(night)
    pipeline = make_pipeline()
    assert_equals_truth(pipeline, world)
    tombstones = set(
        query(
            pipeline,
            "SELECT agent_id, alias FROM {dataset}.agent_aliases WHERE deleted_at IS NOT NULL",
        )
    )
    assert tombstones == set(removed)
    # Only the new versions: the refresh of `agents` did not make the others forget theirs.
    assert world_server.stats.count(VERSION) == len(updated)
    assert world_server.stats.count(VERSIONS) == len(updated)
    assert world_server.stats.count(DETAIL) == len(updated)


def test_a_subset_run_then_a_whole_run_ends_equal_to_the_api(
    world_server: SandboxServer,
) -> None:
    world = world_server.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    a_night(world)

    subset = run_job(defs, instance, tables=["agents", "agent_aliases"])

    assert subset.success and every_check_passed(subset)
    a_night(world)
    pipeline = make_pipeline()
    loaded = set(
        query(
            pipeline,
            "SELECT agent_id, version FROM {dataset}.agent_version_detail WHERE deleted_at IS NULL",
        )
    )
    world_server.stats.reset()

    whole = run_job(defs, instance)

    assert whole.success and every_check_passed(whole)
    assert_equals_truth(make_pipeline(), world)
    # What the subset left to the other tables, and tonight's versions; nothing twice.
    truth = {(a["id"], v) for a in world.agents() for v in a["versions"]}
    assert world_server.stats.count(VERSION) == len(truth - loaded)


@pytest.mark.parametrize("switch", ["run_config", "environment", "command_line"])
def test_each_full_refresh_switch_drops_and_reloads_the_tables(
    world_server: SandboxServer,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    switch: str,
) -> None:
    world = world_server.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    gone = world.agents()[0]["id"]
    world.delete_agent(gone)
    assert run_job(defs, instance).success
    pipeline = make_pipeline()
    assert gone in deleted(pipeline, "agents", "id")
    with duckdb.connect(str(isolated / "warehouse.duckdb")) as connection:
        connection.execute(f"UPDATE {DATASET_NAME}.agent_detail SET name = 'corrupted'")
    world_server.stats.reset()

    if switch == "command_line":
        assert chat_agents_load(["--full-refresh"]) == 0
    else:
        if switch == "environment":
            monkeypatch.setenv("CHAT_AGENTS_FULL_REFRESH", "true")
        result = run_job(defs, instance, run_config=FULL_REFRESH if switch == "run_config" else {})
        assert result.success and every_check_passed(result)
        assert all(m["full_refresh"] is True for m in materializations(result).values())

    assert world_server.stats.count(DETAIL) == len(world.agents())
    assert not query(
        pipeline, "SELECT id FROM {dataset}.agent_detail WHERE name = 'corrupted' LIMIT 1"
    )
    assert deleted(pipeline, "agents", "id") == set()
    assert_equals_truth(pipeline, world)


def test_an_organisation_with_no_agents_then_some_loads_and_checks_through_dagster(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_sandbox(World.generate(agents=0, seed=3))
    point_at(server, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    empty = run_job(defs, instance)

    assert empty.success and every_check_passed(empty)
    pipeline = make_pipeline()
    for table in TABLES:
        assert query(pipeline, f"SELECT COUNT(*) FROM {{dataset}}.{table.name}") == [(0,)]
    assert {t: m["dagster/row_count"] for t, m in materializations(empty).items()} == {
        t.name: 0 for t in TABLES
    }
    world = server.world
    for n in range(3):
        agent = world.create_agent(name=f"First {n}", model="mistral-small-latest")
        world.update_agent(agent["id"], instructions="A second version")
        world.set_alias(agent["id"], "production", 0)

    first = run_job(defs, instance)

    assert first.success and every_check_passed(first)
    assert_equals_truth(make_pipeline(), world)
