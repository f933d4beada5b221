"""Several Mistral workspaces in one warehouse, on the dlt path: each workspace loads through its
own pipeline, with its own key, into the same tables, keyed by workspace; one workspace's
failure, deletions and full refresh leave the others' rows as they were. A warehouse loaded
before workspaces keeps its rows, history included, as the default workspace's."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import ApiAuthError, ChatAgentsConfigError, make_pipeline, run_load
from chat_agents_dagster.source.configuration import configured_workspaces
from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES
from chat_agents_dagster_tests.helpers import error_chain, point_at, query
from chat_agents_dagster_tests.warehouse import (
    assert_equals_truth,
    assert_no_duplicate_keys,
    rows_of_workspace,
)

EU = "eu"
EU_KEY = "sk-test-eu-workspace-key-recognisable"
EU_KEY_VARIABLE = "SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__EU__API_KEY"


@pytest.fixture
def two_workspaces(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> tuple[SandboxServer, World]:
    """A sandbox serving the default workspace and `eu`, each with its own key and agents, and
    the configuration naming both keys."""
    server = start_sandbox(World.generate(agents=12, seed=31, max_versions=3, max_aliases=2))
    eu_world = World.generate(agents=9, seed=32, max_versions=3, max_aliases=2)
    server.add_workspace(EU_KEY, eu_world)
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv(EU_KEY_VARIABLE, EU_KEY)
    return server, eu_world


def load(workspace: str, *, full_refresh: bool = False) -> None:
    run_load(
        make_pipeline(workspace=workspace),
        workspace=workspace,
        alone=False,
        full_refresh=full_refresh,
    )


def workspace_rows(table: str) -> dict[str, int]:
    rows = query(
        make_pipeline(), f"SELECT workspace, COUNT(*) FROM {{dataset}}.{table} GROUP BY workspace"
    )
    return {workspace: count for workspace, count in rows}


def test_two_workspaces_load_into_the_same_tables_each_equal_to_its_own_world(
    two_workspaces: tuple[SandboxServer, World],
) -> None:
    server, eu_world = two_workspaces

    load(DEFAULT_WORKSPACE)
    load(EU)

    pipeline = make_pipeline()
    assert_equals_truth(pipeline, server.world)
    assert_equals_truth(pipeline, eu_world, EU)
    assert workspace_rows("agents") == {DEFAULT_WORKSPACE: len(server.world), EU: len(eu_world)}
    assert_no_duplicate_keys(pipeline)
    # Each workspace has a pipeline, and so a dlt state, of its own.
    assert make_pipeline(workspace=EU).pipeline_name != pipeline.pipeline_name


def test_a_refused_key_fails_its_workspace_alone_naming_its_setting(
    two_workspaces: tuple[SandboxServer, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, eu_world = two_workspaces
    load(DEFAULT_WORKSPACE)
    load(EU)
    monkeypatch.setenv(EU_KEY_VARIABLE, "sk-revoked-eu-key")
    server.world.create_agent(name="Born after the first night", model="mistral-small-latest")

    with pytest.raises(Exception) as raised:
        load(EU)
    load(DEFAULT_WORKSPACE)

    [refused] = [e for e in error_chain(raised.value) if isinstance(e, ApiAuthError)]
    assert EU_KEY_VARIABLE in str(refused)
    assert "sk-revoked-eu-key" not in str(refused)
    pipeline = make_pipeline()
    assert_equals_truth(pipeline, server.world)
    assert_equals_truth(pipeline, eu_world, EU)  # as the last good night left it


def test_a_workspace_without_a_key_is_told_where_to_put_it(
    two_workspaces: tuple[SandboxServer, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(EU_KEY_VARIABLE)
    with pytest.raises(ChatAgentsConfigError, match=EU_KEY_VARIABLE) as raised:
        load(EU)
    assert "[sources.chat_agents_source.workspaces.eu] api_key" in str(raised.value)


def test_deletions_and_a_full_refresh_in_one_workspace_leave_the_other_untouched(
    two_workspaces: tuple[SandboxServer, World],
) -> None:
    server, eu_world = two_workspaces
    load(DEFAULT_WORKSPACE)
    load(EU)
    before = rows_of_workspace(make_pipeline(), DEFAULT_WORKSPACE)
    gone = eu_world.agents()[0]["id"]
    eu_world.delete_agent(gone)

    load(EU)
    load(EU, full_refresh=True)

    pipeline = make_pipeline()
    assert_equals_truth(pipeline, eu_world, EU)
    # The deleted agent is marked, not dropped, even by the full refresh: its history stays.
    assert query(
        pipeline, f"SELECT deleted_at IS NOT NULL FROM {{dataset}}.agents WHERE id = '{gone}'"
    ) == [(True,)]
    after = rows_of_workspace(pipeline, DEFAULT_WORKSPACE)
    for table in TABLES:
        assert after[table.name] == before[table.name], table.name
    assert_equals_truth(pipeline, server.world)


def test_a_warehouse_loaded_before_workspaces_keeps_its_rows_as_the_default_workspace(
    two_workspaces: tuple[SandboxServer, World],
) -> None:
    server, _ = two_workspaces
    load(DEFAULT_WORKSPACE)
    gone = server.world.agents()[0]["id"]
    server.world.delete_agent(gone)
    load(DEFAULT_WORKSPACE)  # leaves a soft-deleted agent, history the API cannot give back
    # The tables as a load before workspaces left them: no workspace column.
    pipeline = make_pipeline()
    with pipeline.sql_client() as client:
        for table in TABLES:
            client.execute_sql(
                f"ALTER TABLE {client.make_qualified_table_name(table.name)} DROP COLUMN workspace"
            )
    rows_before = {
        table.name: len(query(pipeline, f"SELECT 1 FROM {{dataset}}.{table.name}"))
        for table in TABLES
    }
    server.stats.reset()

    load(DEFAULT_WORKSPACE)

    assert workspace_rows("agents") == {DEFAULT_WORKSPACE: rows_before["agents"]}
    for table in TABLES:
        assert workspace_rows(table.name) == {DEFAULT_WORKSPACE: rows_before[table.name]}
    assert query(
        pipeline, f"SELECT deleted_at IS NOT NULL FROM {{dataset}}.agents WHERE id = '{gone}'"
    ) == [(True,)]
    assert_equals_truth(make_pipeline(), server.world)
    # Nothing fetched again: the listing, and no version or detail of an unchanged agent.
    assert server.stats.count("GET /v1/agents/pages") > 0
    assert server.stats.count("GET /v1/agents/{agent_id}/versions/{version}") == 0
    assert server.stats.count("GET /v1/agents/{agent_id}") == 0


def test_chat_agents_load_loads_every_configured_workspace_and_goes_on_past_a_failed_one(
    two_workspaces: tuple[SandboxServer, World], isolated: Path
) -> None:
    server, eu_world = two_workspaces
    env = {**os.environ, "CHAT_AGENTS_WORKSPACES": f"{EU},{DEFAULT_WORKSPACE}"}
    command = [sys.executable, "-m", "chat_agents_dagster.source", "--json"]

    both = subprocess.run(command, capture_output=True, text=True, env=env, cwd=isolated)
    refused = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**env, EU_KEY_VARIABLE: "sk-revoked-eu-key"},
        cwd=isolated,
    )

    assert both.returncode == 0, both.stderr
    summaries = [json.loads(line) for line in both.stdout.splitlines()]
    assert {s["workspace"]: s["rows"]["agents"] for s in summaries} == {
        EU: len(eu_world),
        DEFAULT_WORKSPACE: len(server.world),
    }
    assert refused.returncode == 1
    assert f"Load of workspace '{EU}' failed" in refused.stderr
    assert EU_KEY_VARIABLE in refused.stderr and "sk-revoked-eu-key" not in refused.stderr
    # The failed workspace did not stop the next one.
    assert [json.loads(line)["workspace"] for line in refused.stdout.splitlines()] == [
        DEFAULT_WORKSPACE
    ]
    pipeline = make_pipeline()
    assert_equals_truth(pipeline, server.world)
    assert_equals_truth(pipeline, eu_world, EU)


def test_bad_workspace_names_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for value in ("default,EU", "default,eu-west", "default,default", "1st"):
        monkeypatch.setenv("CHAT_AGENTS_WORKSPACES", value)
        with pytest.raises(ChatAgentsConfigError, match="CHAT_AGENTS_WORKSPACES="):
            configured_workspaces()
    monkeypatch.setenv("CHAT_AGENTS_WORKSPACES", " default , eu_prod ")
    assert configured_workspaces() == (DEFAULT_WORKSPACE, "eu_prod")
