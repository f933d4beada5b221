"""The code location as Dagster sees it: it loads with no key and no network, and every asset
spec (keys, lineage, group, kinds, table names, freshness) is exactly what users browse."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.deployment import DeploymentSettings
from chat_agents_dagster.settings import TABLES

REPO = Path(__file__).resolve().parents[1]
TABLE_KEYS = {table.name: dg.AssetKey(["chat_agents_data", table.name]) for table in TABLES}
API = dg.AssetKey(["mistral", "agents_api"])

NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise AssertionError(f"network access at load time: {args!r}")
socket.socket.connect = refuse
socket.create_connection = refuse
"""


def test_the_code_location_loads_with_no_key_and_no_network(isolated: Path) -> None:
    code = (
        NO_NETWORK
        + "from chat_agents_dagster.definitions import defs\n"
        + "defs.resolve_job_def('chat_agents_job'); defs.resolve_asset_graph()\n"
        # What the location built at load is out of the cyclic collector's view (frozen).
        + "import gc; assert gc.get_freeze_count() > 0\n"
        + "assert not any(o is defs for o in gc.get_objects()), 'defs is not frozen'\n"
    )
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dagster_itself_validates_the_workspace(isolated: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_table_is_one_asset_with_its_real_lineage() -> None:
    graph = build_definitions(DeploymentSettings()).resolve_asset_graph()
    parents = {key: set(graph.get(key).parent_keys) for key in graph.get_all_asset_keys()}

    assert parents == {
        API: set(),
        TABLE_KEYS["agents"]: {API},
        TABLE_KEYS["agent_detail"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_versions"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_aliases"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_version_detail"]: {TABLE_KEYS["agent_versions"]},
    }
    assert not graph.get(API).is_materializable


def test_asset_specs_carry_group_kinds_table_names_descriptions_and_freshness() -> None:
    settings = DeploymentSettings(freshness_window=timedelta(hours=30))
    graph = build_definitions(settings).resolve_asset_graph()

    for table in TABLES:
        node = graph.get(TABLE_KEYS[table.name])
        assert node.group_name == "chat_agents"
        assert node.kinds == {"dlt", "duckdb"}
        assert node.description == table.description
        assert node.metadata["dagster/table_name"] == f"chat_agents_data.{table.name}"
        assert node.metadata["chat_agents/primary_key"] == ", ".join(table.primary_key)
        assert node.tags["chat_agents/table"] == table.name
        assert node.freshness_policy == dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=30)
        )
    assert graph.get(API).group_name == "chat_agents"


def test_the_job_materializes_the_five_tables_and_runs_every_check() -> None:
    defs = build_definitions(DeploymentSettings())
    job = defs.resolve_job_def("chat_agents_job")
    graph = defs.resolve_asset_graph()

    assert set(job.asset_layer.executable_asset_keys) == set(TABLE_KEYS.values())
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(graph.asset_check_keys)
    checks = {(key.asset_key.path[-1], key.name) for key in graph.asset_check_keys}
    for table in TABLES:
        assert (table.name, "primary_key") in checks
        assert (table.name, "not_emptied") in checks
        for reference in table.references:
            assert (table.name, f"references_{reference.table}") in checks
        if table.one_row_per:
            assert (table.name, f"one_row_per_{table.one_row_per}") in checks


def test_the_dlt_op_is_in_the_pipeline_pool_so_runs_never_overlap() -> None:
    defs = build_definitions(DeploymentSettings())
    job = defs.resolve_job_def("chat_agents_job")
    pools = {node.name: node.definition.pools for node in job.graph.nodes}
    assert pools == {
        "chat_agents_load": {"chat_agents_pipeline"},
        "chat_agents_checks": {"chat_agents_pipeline"},
    }


@pytest.mark.parametrize(
    ("environment", "executor"),
    [({}, "in_process"), ({"CHAT_AGENTS_EXECUTOR": "multiprocess"}, "multiprocess")],
)
def test_every_job_runs_in_one_process_unless_the_deployment_asks_for_one_per_step(
    environment: dict[str, str], executor: str
) -> None:
    """The job, and the asset job the UI builds for "Materialize", take the location's executor."""
    repository = build_definitions(DeploymentSettings.from_env(environment)).get_repository_def()
    jobs = {job.name: job.executor_def.name for job in repository.get_all_jobs()}
    assert "chat_agents_job" in jobs and len(jobs) > 1
    assert jobs == dict.fromkeys(jobs, executor)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CHAT_AGENTS_EXECUTOR", "threads", "use in_process"),
        ("CHAT_AGENTS_TIMEZONE", "Mars/Olympus", "is not an IANA time zone"),
        ("CHAT_AGENTS_FRESHNESS_HOURS", "-3", "give a positive number of hours"),
        ("CHAT_AGENTS_FRESHNESS_HOURS", "soon", "give a positive number of hours"),
        ("CHAT_AGENTS_NIGHTLY_ENABLED", "maybe", "use true or false"),
    ],
)
def test_a_bad_deployment_variable_fails_the_load_naming_it(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as failure:
        DeploymentSettings.from_env({variable: value})
    assert variable in str(failure.value)
