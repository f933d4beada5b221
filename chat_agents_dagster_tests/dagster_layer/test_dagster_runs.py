"""The job run in-process against the sandbox: what each materialization reports, repeated runs
in one process, a table that loads nothing, and how often a run reads dlt's state."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import dlt
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source.__main__ import main as chat_agents_load
from chat_agents_dagster.tables import GOVERNANCE_PIPELINE_NAME, PIPELINE_NAME, TABLES_BY_NAME
from chat_agents_dagster_tests.dagster_helpers import (
    FULL_REFRESH_ALL,
    api_observations,
    check_results,
    definitions,
    materializations,
    run_job,
)
from chat_agents_dagster_tests.helpers import point_at


def test_each_materialization_reports_rows_schema_table_and_api_requests(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    world = sandbox.world
    agents = world.agents()
    truth = {
        "agents": len(agents),
        "agent_detail": len(agents),
        "agent_versions": sum(len(world.versions(a["id"])) for a in agents),
        "agent_aliases": sum(len(world.aliases(a["id"])) for a in agents),
        "agent_version_detail": sum(len(world.versions(a["id"])) for a in agents),
    }

    result = run_job(definitions(), dg.DagsterInstance.ephemeral())

    assert result.success
    metadata = materializations(result)
    assert set(metadata) == set(truth)
    for table, rows in truth.items():
        assert metadata[table]["rows_loaded"] == rows
        assert metadata[table]["dagster/row_count"] == rows
        assert metadata[table]["dagster/table_name"] == f"chat_agents_data.{table}"
        # The destination is the run's, named on each materialization (the specs say only dlt).
        assert metadata[table]["dagster/storage_kind"] == "duckdb"
        assert metadata[table]["destination_name"] == "duckdb"
        # Run-wide figures are the API observation's, once, not each table's.
        assert not {
            name for name in metadata[table] if name.startswith(("api_requests", "agents_new"))
        }
        columns = {c.name for c in metadata[table]["dagster/column_schema"].columns}  # type: ignore[attr-defined]
        assert {"_dlt_load_id", *TABLES_BY_NAME[table].primary_key} <= columns
    assert metadata["agent_aliases"]["api_rows"] == truth["agent_aliases"]
    [api] = api_observations(result)
    assert api["api_requests"] == sandbox.stats.total()
    assert api["agents_listed"] == api["agents_new"] == len(agents)
    assert api["agents_deleted"] == 0
    by_endpoint = api["api_requests_by_endpoint"]
    assert by_endpoint["GET /agents/{agent_id}"] == len(agents)  # type: ignore[index]
    assert all(evaluation.passed for evaluation in check_results(result).values())


def test_two_runs_in_one_process_both_succeed(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    first = run_job(defs, instance)
    sandbox.world.create_agent(name="Added between runs", model="mistral-small-latest")
    second = run_job(defs, instance)

    assert first.success and second.success
    agents = materializations(second)["agents"]
    assert agents["dagster/row_count"] == len(sandbox.world.agents())
    assert agents["rows_loaded"] == len(sandbox.world.agents())
    [api] = api_observations(second)
    assert (api["agents_new"], api["agents_unchanged"]) == (
        1,
        len(sandbox.world.agents()) - 1,
    )
    # Only the new agent's detail was fetched: the merge load is incremental under Dagster too.
    assert materializations(second)["agent_detail"]["rows_loaded"] == 1


def test_a_table_that_loads_no_rows_does_not_fail_the_run(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_sandbox(World.generate(agents=12, seed=4, max_aliases=0))
    point_at(server, monkeypatch.setenv)
    assert all(not server.world.aliases(a["id"]) for a in server.world.agents())

    result = run_job(definitions(), dg.DagsterInstance.ephemeral())

    assert result.success
    aliases = materializations(result)["agent_aliases"]
    assert aliases["rows_loaded"] == 0
    assert aliases["dagster/row_count"] == 0
    assert check_results(result)[("agent_aliases", "not_emptied")].passed


def test_the_run_log_shows_dlt_progress_for_each_step(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    instance = dg.DagsterInstance.ephemeral()

    result = run_job(definitions(), instance)

    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    progress = [m for m in messages if m.lstrip().startswith("-") and "---" in m]
    steps = {m.strip("- \n").split()[0].lower() for m in progress}
    assert {"extract", "normalize", "load"} <= steps, progress
    extract = next(m for m in progress if m.strip("- \n").lower().startswith("extract"))
    # dlt's counters name the tables as rows come in.
    assert "agents" in extract


@pytest.mark.parametrize("runner", ["dagster", "chat-agents-load"])
def test_each_run_reads_dlt_state_from_the_warehouse_once(
    runner: str, world_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt restores its state (and the schemas) from the warehouse when a run starts; a run that
    did so twice would pay for the round trips twice and could act on two different states. The
    governance pipeline has its own state, read once by a run that has rows to write: not by the
    second, whose only news is an agent with one version and no alias."""
    reads: list[str] = []
    restore = dlt.Pipeline._restore_state_from_destination

    def counted(pipeline: dlt.Pipeline) -> Any:
        reads.append(pipeline.pipeline_name)
        return restore(pipeline)

    monkeypatch.setattr(dlt.Pipeline, "_restore_state_from_destination", counted)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    def one_run(full_refresh: bool = False) -> None:
        if runner == "dagster":
            assert run_job(
                defs, instance, run_config=FULL_REFRESH_ALL if full_refresh else None
            ).success
        else:
            assert chat_agents_load(["--full-refresh"] if full_refresh else []) == 0

    reads_per_run = []
    for full_refresh in (False, False, True):  # empty warehouse, a night later, a full refresh
        reads.clear()
        one_run(full_refresh)
        reads_per_run.append(list(reads))
        world_server.world.create_agent(name="Between runs", model="mistral-small-latest")

    both = [PIPELINE_NAME, GOVERNANCE_PIPELINE_NAME]
    assert reads_per_run == [both, [PIPELINE_NAME], both]
