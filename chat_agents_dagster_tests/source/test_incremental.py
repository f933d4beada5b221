"""Nightly cost follows change: after a full load, a changed world is merged in with only the
requests the change needs; deletions are marked, not dropped; state lives in the destination."""

import shutil
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import TABLES
from chat_agents_dagster_tests.helpers import listing_requests, load, query
from chat_agents_dagster_tests.warehouse import assert_equals_truth, deleted

DETAIL = "GET /v1/agents/{agent_id}"
VERSIONS = "GET /v1/agents/{agent_id}/versions"
VERSION = "GET /v1/agents/{agent_id}/versions/{version}"
ALIASES = "GET /v1/agents/{agent_id}/aliases"


def test_a_changed_world_is_merged_in_fetching_only_what_changed(
    world_server: SandboxServer,
) -> None:
    server, world = world_server, world_server.world
    pipeline, _ = load()
    agents = world.agents()
    with_aliases = [a for a in agents if world.aliases(a["id"]) and len(a["versions"]) > 1]
    plain = [a for a in agents if a not in with_aliases]

    new = [world.create_agent(name=f"New agent {n}", model="mistral-small-latest") for n in (1, 2)]
    updated = [world.update_agent(a["id"], instructions=f"Changed {a['id']}") for a in plain[:3]]
    for agent in with_aliases[:2]:  # alias moves
        alias = world.aliases(agent["id"])[0]
        other = next(v for v in agent["versions"] if v != alias["version"])
        world.set_alias(agent["id"], alias["alias"], other)
    removed_aliases = []
    for agent in with_aliases[2:4]:
        alias = world.aliases(agent["id"])[0]["alias"]
        world.delete_alias(agent["id"], alias)
        removed_aliases.append((agent["id"], alias))
    gone = [a["id"] for a in plain[3:5]]
    for agent_id in gone:
        world.delete_agent(agent_id)
    recreated_from = plain[5]
    world.delete_agent(recreated_from["id"])
    recreated = world.create_agent(name=recreated_from["name"], model=recreated_from["model"])
    server.stats.reset()

    pipeline, stats = load()

    assert_equals_truth(pipeline, world)
    fresh = [*new, recreated]
    assert server.stats.count(DETAIL) == len(fresh) + len(updated)
    assert server.stats.count(VERSION) == sum(len(a["versions"]) for a in fresh) + len(updated)
    assert server.stats.count(VERSIONS) == len(fresh) + len(updated)
    assert server.stats.count(ALIASES) == len(world.agents())
    dead = {*gone, recreated_from["id"]}
    assert deleted(pipeline, "agents", "id") == dead
    assert deleted(pipeline, "agent_detail", "id") == dead
    assert deleted(pipeline, "agent_versions", "agent_id") == dead
    assert deleted(pipeline, "agent_version_detail", "agent_id") == dead
    removed = set(
        query(
            pipeline,
            "SELECT agent_id, alias FROM {dataset}.agent_aliases"
            " WHERE deleted_at IS NOT NULL AND agent_id IN ("
            + ", ".join(f"'{agent_id}'" for agent_id, _ in removed_aliases)
            + ")",
        )
    )
    assert removed == set(removed_aliases)
    assert vars(stats.agents) == {
        "new": len(fresh),
        "changed": len(updated),
        "unchanged": len(agents) - len(updated) - len(dead),
        "deleted": len(dead),
    }


def test_an_agent_that_comes_back_is_live_again_with_everything_it_owns(
    world_server: SandboxServer,
) -> None:
    world = world_server.world
    load()
    agent = world.agents()[0]
    world.delete_agent(agent["id"])
    pipeline, _ = load()
    assert agent["id"] in deleted(pipeline, "agent_versions", "agent_id")

    world.restore_agent(agent["id"])
    pipeline, stats = load()

    assert_equals_truth(pipeline, world)
    assert agent["id"] not in deleted(pipeline, "agents", "id")
    assert agent["id"] not in deleted(pipeline, "agent_version_detail", "agent_id")
    assert stats.agents.new == 1


def test_an_unchanged_rerun_fetches_only_the_listing_and_aliases(
    world_server: SandboxServer,
) -> None:
    load()
    world_server.stats.reset()

    pipeline, stats = load()

    agents = len(world_server.world.agents())
    assert world_server.stats.snapshot()["by_route"] == {
        "GET /v1/agents/pages": listing_requests(world_server),
        ALIASES: agents,
    }
    assert stats.agents.unchanged == agents
    assert_equals_truth(pipeline, world_server.world)


def test_aliases_can_be_fetched_only_for_changed_agents(world_server: SandboxServer) -> None:
    load(aliases_every_run=False)
    world_server.stats.reset()

    load(aliases_every_run=False)

    assert world_server.stats.snapshot()["by_route"] == {
        "GET /v1/agents/pages": listing_requests(world_server)
    }


def test_a_run_that_fails_mid_listing_marks_nothing_deleted(
    world_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(agents_page_size=10)
    world = world_server.world
    victim = world.agents()[-1]["id"]
    world.delete_agent(victim)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")

    def fail_the_rest_of_the_listing(server: SandboxServer, _: dict[str, str]) -> None:
        server.fail_next(2, status=503, route="GET /v1/agents/pages")  # both attempts

    world_server.on_request("GET /v1/agents/pages", fail_the_rest_of_the_listing)
    with pytest.raises(PipelineStepFailed):
        load(agents_page_size=10)
    assert deleted(make_pipeline(), "agents", "id") == set()

    pipeline, _ = load(agents_page_size=10)  # the listing completes this time
    assert deleted(pipeline, "agents", "id") == {victim}


def test_a_run_that_fails_at_the_first_page_changes_nothing(
    world_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(agents_page_size=10)
    world_server.world.delete_agent(world_server.world.agents()[0]["id"])
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    world_server.fail_next(20, status=503, route="GET /v1/agents/pages")

    with pytest.raises(PipelineStepFailed):
        load(agents_page_size=10)

    pipeline = dlt.pipeline(
        "chat_agents_pipeline", destination="duckdb", dataset_name="chat_agents_data"
    )
    assert deleted(pipeline, "agents", "id") == set()


def test_state_survives_deleting_the_pipeline_working_directory(
    world_server: SandboxServer, isolated: Path
) -> None:
    load()
    shutil.rmtree(isolated / "dlt_data")
    world_server.stats.reset()

    load()

    assert world_server.stats.count(DETAIL) == 0
    assert world_server.stats.count(VERSION) == 0


def test_a_deleted_warehouse_means_a_full_reload(
    world_server: SandboxServer, isolated: Path
) -> None:
    load()
    full = world_server.stats.total()
    (isolated / "warehouse.duckdb").unlink()
    world_server.stats.reset()

    pipeline, _ = load()

    assert world_server.stats.total() == full
    assert_equals_truth(pipeline, world_server.world)


def test_a_full_refresh_rebuilds_everything(world_server: SandboxServer, isolated: Path) -> None:

    load()
    world_server.world.delete_agent(world_server.world.agents()[0]["id"])
    load()
    with duckdb.connect(str(isolated / "warehouse.duckdb")) as connection:
        connection.execute("UPDATE chat_agents_data.agent_detail SET name = 'corrupted'")
    world_server.stats.reset()

    pipeline, _ = load(full_refresh=True)

    assert_equals_truth(pipeline, world_server.world)
    assert (
        query(pipeline, "SELECT COUNT(*) FROM {dataset}.agent_detail WHERE name = 'corrupted'")[0][
            0
        ]
        == 0
    )
    assert deleted(pipeline, "agents", "id") == set()
    assert world_server.stats.count(DETAIL) == len(world_server.world.agents())


def tools_by_agent(pipeline: dlt.Pipeline, table: str) -> list[tuple[str | None, str]]:
    """(agent id, tool type) of every nested tool row in `table`; an orphan has no agent id."""
    sql = (
        f"SELECT parent.id, tool.type FROM {{dataset}}.{table}__tools AS tool"
        f" LEFT JOIN {{dataset}}.{table} AS parent ON tool._dlt_root_id = parent._dlt_id"
    )
    return sorted(query(pipeline, sql), key=str)


def test_a_first_load_replaces_and_later_runs_merge_nested_rows_too(
    world_server: SandboxServer,
) -> None:
    world = world_server.world
    pipeline, _ = load()
    # The first load writes straight into the tables; later runs merge on the primary keys.
    assert {
        t.name: pipeline.default_schema.get_table(t.name)["write_disposition"] for t in TABLES
    } == {t.name: "replace" for t in TABLES}
    with_tools = next(a for a in world.agents() if len(a["tools"]) > 1)
    world.update_agent(with_tools["id"], tools=[{"type": "web_search"}])
    world.update_agent(world.agents()[0]["id"], tools=[{"type": "code_interpreter"}])

    pipeline, _ = load()

    assert {
        t.name: pipeline.default_schema.get_table(t.name)["write_disposition"] for t in TABLES
    } == {t.name: "merge" for t in TABLES}
    truth = sorted(
        ((a["id"], tool["type"]) for a in world.agents() for tool in a["tools"]), key=str
    )
    assert tools_by_agent(pipeline, "agents") == truth
    assert tools_by_agent(pipeline, "agent_detail") == truth
    assert_equals_truth(pipeline, world)
