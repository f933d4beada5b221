"""PostgreSQL for real: the whole job loads into a `postgres` destination chosen by configuration
alone, every check passes there, re-runs merge and soft-delete on it, and the Dagster instance
itself runs on PostgreSQL from the shipped deploy/dagster.yaml. Without a reachable server these
tests skip, saying so; CI requires the server and fails instead (see conftest.py)."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from sqlalchemy.engine import URL

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import DATASET_NAME, GOVERNANCE_TABLES, SOURCE_NAME, TABLES
from chat_agents_dagster_tests.dagster_helpers import (
    api_observations,
    check_results,
    definitions,
    materializations,
    run_job,
)
from chat_agents_dagster_tests.helpers import point_at, query
from chat_agents_dagster_tests.warehouse import assert_equals_truth, current_rows, deleted

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY_DAGSTER_YAML = REPOSITORY / "deploy" / "dagster.yaml"


def sql(url: URL, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """A query straight to the server, not through dlt or Dagster."""
    connection = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def assert_every_check_ran_and_passed(
    defs: dg.Definitions, result: dg.ExecuteInProcessResult
) -> None:
    expected = {
        (key.asset_key.path[-1], key.name) for key in defs.resolve_asset_graph().asset_check_keys
    }
    evaluations = check_results(result)
    assert set(evaluations) == expected
    failed = {key: e.metadata for key, e in evaluations.items() if not e.passed}
    assert failed == {}


def test_the_whole_job_loads_into_postgres_and_every_check_passes_there(
    postgres_warehouse: URL, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    world = sandbox.world
    defs = definitions()

    result = run_job(defs, dg.DagsterInstance.ephemeral())

    assert result.success
    pipeline = make_pipeline()
    assert pipeline.destination.destination_name == "postgres"
    metadata = materializations(result)
    assert set(metadata) == {table.name for table in TABLES}
    assert {table["dagster/storage_kind"] for table in metadata.values()} == {"postgres"}
    assert metadata["agents"]["dagster/row_count"] == len(world.agents())
    assert_every_check_ran_and_passed(defs, result)
    assert_equals_truth(pipeline, world)
    # The rows are in the PostgreSQL database the settings named, not in some DuckDB file.
    in_postgres = {
        name
        for (name,) in sql(
            postgres_warehouse,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            DATASET_NAME,
        )
    }
    assert {table.name for table in TABLES} | {"_dlt_loads", "_dlt_pipeline_state"} <= in_postgres
    assert sql(postgres_warehouse, f"SELECT COUNT(*) FROM {DATASET_NAME}.agents")[0][0] == len(
        world.agents()
    )
    assert not list(isolated.glob("*.duckdb"))


def test_a_rerun_on_postgres_merges_the_changes_and_marks_deletions(
    postgres_warehouse: URL, world_server: SandboxServer
) -> None:
    world = world_server.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    agents = world.agents()
    with_aliases = [a for a in agents if world.aliases(a["id"]) and len(a["versions"]) > 1]
    plain = [a for a in agents if a not in with_aliases]
    new = world.create_agent(name="New agent", model="mistral-small-latest")
    updated = [world.update_agent(a["id"], instructions=f"Changed {a['id']}") for a in plain[:3]]
    moved = with_aliases[0]
    alias = world.aliases(moved["id"])[0]
    world.set_alias(
        moved["id"], alias["alias"], next(v for v in moved["versions"] if v != alias["version"])
    )
    dropped = with_aliases[1]
    dropped_alias = world.aliases(dropped["id"])[0]["alias"]
    world.delete_alias(dropped["id"], dropped_alias)
    gone = {a["id"] for a in plain[3:5]}
    gone_aliases = {(agent_id, x["alias"]) for agent_id in gone for x in world.aliases(agent_id)}
    for agent_id in gone:
        world.delete_agent(agent_id)

    second = run_job(defs, instance)

    assert second.success
    assert_every_check_ran_and_passed(defs, second)
    pipeline = make_pipeline()
    assert_equals_truth(pipeline, world)
    # Merged, not reloaded: only the new and the updated agents' details were written.
    assert materializations(second)["agent_detail"]["rows_loaded"] == 1 + len(updated)
    assert api_observations(second)[0]["agents_deleted"] == len(gone)
    assert new["id"] in {row[0] for row in current_rows(pipeline, "agents", "id")}
    for table, column in (
        ("agents", "id"),
        ("agent_detail", "id"),
        ("agent_versions", "agent_id"),
        ("agent_version_detail", "agent_id"),
    ):
        assert deleted(pipeline, table, column) == gone, table
    assert set(
        query(
            pipeline,
            "SELECT agent_id, alias FROM {dataset}.agent_aliases WHERE deleted_at IS NOT NULL",
        )
    ) == {(dropped["id"], dropped_alias), *gone_aliases}
    # Deleted agents keep their rows, stamped with the time of the load that missed them.
    load_time = query(
        pipeline,
        f"SELECT MAX(inserted_at) FROM {{dataset}}._dlt_loads WHERE schema_name = '{SOURCE_NAME}'",
    )[0][0]
    assert {
        row[0]
        for row in query(
            pipeline, "SELECT deleted_at FROM {dataset}.agents WHERE deleted_at IS NOT NULL"
        )
    } == {load_time}
    assert sql(
        postgres_warehouse,
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'agents' AND column_name = 'deleted_at'",
        DATASET_NAME,
    ) == [("timestamp with time zone",)]


def test_the_dagster_instance_runs_on_postgres_from_the_shipped_dagster_yaml(
    postgres_warehouse: URL,
    new_postgres_database: Callable[[], URL],
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    isolated: Path,
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    instance_db = new_postgres_database()
    home = isolated / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    for variable, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": instance_db.host,
        "DAGSTER_PG_PORT": str(instance_db.port or 5432),
        "DAGSTER_PG_DB": instance_db.database,
        "DAGSTER_PG_USERNAME": instance_db.username,
        "DAGSTER_PG_PASSWORD": instance_db.password,
    }.items():
        monkeypatch.setenv(variable, str(value))
    defs = definitions()

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = run_job(defs, instance)
    assert result.success

    # The run and its events are rows in PostgreSQL, written by Dagster's own storage.
    assert sql(instance_db, "SELECT status FROM runs WHERE run_id = %s", result.run_id) == [
        ("SUCCESS",)
    ]
    events = sql(
        instance_db,
        "SELECT dagster_event_type, asset_key FROM event_logs WHERE run_id = %s"
        " AND dagster_event_type IN ('ASSET_MATERIALIZATION', 'ASSET_CHECK_EVALUATION')",
        result.run_id,
    )
    materialized = {
        dg.AssetKey(json.loads(key)) for kind, key in events if kind == "ASSET_MATERIALIZATION"
    }
    assert materialized == {
        dg.AssetKey([DATASET_NAME, table.name]) for table in (*TABLES, *GOVERNANCE_TABLES)
    }
    check_keys = defs.resolve_asset_graph().asset_check_keys
    assert sum(kind == "ASSET_CHECK_EVALUATION" for kind, _ in events) == len(check_keys)

    # A new instance from the same file, as another process of the deployment would start, reads
    # them back through Dagster's API.
    with dg.DagsterInstance.get() as reopened:
        run = reopened.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        for key in materialized:
            event = reopened.get_latest_materialization_event(key)
            assert event is not None and event.run_id == result.run_id
        for check_key in check_keys:
            evaluation = reopened.event_log_storage.get_latest_asset_check_execution_by_key(
                [check_key]
            )[check_key]
            assert evaluation.run_id == result.run_id
            assert evaluation.status.value == "SUCCEEDED", check_key


def test_the_postgres_example_instance_keeps_the_repository_instance_settings() -> None:
    """deploy/dagster.yaml differs from dagster.yaml by its storage only, and holds no
    connection setting itself: each is read from the environment."""
    deploy = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
    connection = deploy.pop("storage")["postgres"]["postgres_db"]
    assert connection.pop("scheme") == "postgresql+psycopg2"
    assert connection == {
        field: {"env": f"DAGSTER_PG_{variable}"}
        for field, variable in (
            ("hostname", "HOST"),
            ("port", "PORT"),
            ("db_name", "DB"),
            ("username", "USERNAME"),
            ("password", "PASSWORD"),
        )
    }
    assert deploy == yaml.safe_load((REPOSITORY / "dagster.yaml").read_text())
