"""The code location as Dagster sees it: it loads with no key, no network and none of the
project's settings, `dg` reads it as a project, and every asset spec (keys, lineage, group, kinds,
table names, freshness) is exactly what users browse."""

import inspect
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.deployment import DeploymentSettings
from chat_agents_dagster.source import chat_agents_source
from chat_agents_dagster.tables import GOVERNANCE_TABLES, SOURCE_NAME, TABLES
from chat_agents_dagster_tests.helpers import telemetry_logs

REPO = Path(__file__).resolve().parents[2]
TABLE_KEYS = {table.name: dg.AssetKey(["chat_agents_data", table.name]) for table in TABLES}
GOVERNANCE_KEYS = {
    table.name: dg.AssetKey(["chat_agents_data", table.name]) for table in GOVERNANCE_TABLES
}
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


# Records every key dlt's configuration providers are asked for, and refuses to build a pipeline.
LOOKUPS = """
import json, sys
import dlt
from dlt.common.configuration.providers import provider
import dlt.common.configuration.providers.environ, dlt.common.configuration.providers.toml

asked = []

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

for cls in set(subclasses(provider.ConfigProvider)):
    if "get_value" in cls.__dict__:
        def get_value(self, key, hint, pipeline_name, *sections, _get=cls.__dict__["get_value"]):
            asked.append([key, list(sections)])
            return _get(self, key, hint, pipeline_name, *sections)
        cls.get_value = get_value

def no_pipeline(*args, **kwargs):
    raise AssertionError("a dlt pipeline was built while the code location loaded")
dlt.Pipeline.__init__ = no_pipeline
"""


@pytest.mark.parametrize(
    "workspaces", ["", "default,eu"], ids=["one_workspace", "partitioned_by_workspace"]
)
def test_the_code_location_resolves_none_of_the_projects_settings_and_builds_no_pipeline(
    isolated: Path, workspaces: str
) -> None:
    # dlt's own runtime settings (logging, telemetry, naming) are read when any dlt source is
    # built, which @dlt_assets needs; the destination, its credentials, the API key and every
    # setting of the source are a run's to read, and no pipeline nor its directory is made.
    code = (
        LOOKUPS
        + "from chat_agents_dagster.definitions import defs\n"
        + "defs.resolve_job_def('chat_agents_job'); defs.resolve_asset_graph()\n"
        + "json.dump(asked, sys.stdout)\n"
    )
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    # A destination no run could use, and no working directory yet: loading must not notice.
    env["DESTINATION_TYPE"] = "nosuchdb"
    env["DLT_DATA_DIR"] = str(isolated / "dlt-data-never-made")
    env["CHAT_AGENTS_WORKSPACES"] = workspaces
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    asked = [(key, tuple(sections)) for key, sections in json.loads(result.stdout)]
    source_arguments = set(inspect.signature(chat_agents_source).parameters)
    assert {key for key, _ in asked} >= {"log_level"}, "the spy saw no lookup at all"
    assert [
        (key, sections)
        for key, sections in asked
        if key == "destination_type"
        or "destination" in sections
        or "credentials" in sections
        or (key in source_arguments and SOURCE_NAME in sections)
    ] == []
    assert not (isolated / "dlt-data-never-made").exists()


def dagster_home(directory: Path) -> Path:
    """An instance directory with the repository's dagster.yaml (telemetry off), as .ci/run and
    the README set DAGSTER_HOME for `dg`."""
    directory.mkdir()
    shutil.copy(REPO / "dagster.yaml", directory / "dagster.yaml")
    return directory


def test_dg_checks_and_lists_the_project_and_sends_no_telemetry(tmp_path: Path) -> None:
    dg_cli = Path(sys.executable).with_name("dg")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k and k != "VIRTUAL_ENV"}
    env.update(DAGSTER_HOME=str(dagster_home(tmp_path / "dagster_home")), HOME=str(home))

    def dg_run(*arguments: str) -> str:
        result = subprocess.run(
            [str(dg_cli), *arguments],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # Run as the README runs it (.venv/bin/dg, no activated virtualenv), dg has nothing to
        # warn about.
        output = result.stdout + result.stderr
        assert "virtual environment does not match" not in output, output
        return result.stdout

    assert "All definitions loaded successfully" in dg_run("check", "defs")
    listed = json.loads(dg_run("list", "defs", "--json"))

    defs = build_definitions(DeploymentSettings())
    graph = defs.resolve_asset_graph()
    assert {asset["asset_key"] for asset in listed["assets"]} == {
        key.to_user_string() for key in graph.get_all_asset_keys()
    }
    assert {check["key"] for check in listed["asset_checks"]} == {
        key.to_user_string() for key in graph.asset_check_keys
    }
    assert [job["name"] for job in listed["jobs"]] == ["chat_agents_job"]
    assert [schedule["name"] for schedule in listed["schedules"]] == ["chat_agents_nightly"]
    assert sorted(sensor["name"] for sensor in listed["sensors"]) == sorted(
        sensor.name for sensor in defs.sensors or []
    )
    assert len(listed["sensors"]) == 3  # freshness, run-failure alerts, WARN-check alerts
    # dg's telemetry follows the instance's (dagster.yaml: off): no telemetry log was written,
    # which is what Dagster uploads.
    assert telemetry_logs(home / ".dagster") == []
    assert telemetry_logs(Path(env["DAGSTER_HOME"])) == []


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
    defs = build_definitions(DeploymentSettings())
    graph = defs.resolve_asset_graph()
    parents = {key: set(graph.get(key).parent_keys) for key in graph.get_all_asset_keys()}

    assert parents == {
        API: set(),
        TABLE_KEYS["agents"]: {API},
        TABLE_KEYS["agent_detail"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_versions"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_aliases"]: {TABLE_KEYS["agents"]},
        TABLE_KEYS["agent_version_detail"]: {TABLE_KEYS["agent_versions"]},
        GOVERNANCE_KEYS["agent_alias_history"]: {TABLE_KEYS["agent_aliases"]},
        GOVERNANCE_KEYS["agent_version_changes"]: {TABLE_KEYS["agent_versions"]},
    }
    assert not graph.get(API).is_materializable


def test_asset_specs_carry_group_kinds_table_names_descriptions_and_freshness() -> None:
    settings = DeploymentSettings(freshness_window=timedelta(hours=30))
    graph = build_definitions(settings).resolve_asset_graph()

    for table in TABLES:
        node = graph.get(TABLE_KEYS[table.name])
        assert node.group_name == "chat_agents"
        assert node.kinds == {"dlt"}
        assert node.description == table.description
        assert node.metadata["dagster/table_name"] == f"chat_agents_data.{table.name}"
        assert node.metadata["chat_agents/primary_key"] == ", ".join(table.primary_key)
        assert node.tags["chat_agents/table"] == table.name
        assert node.freshness_policy == dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=30)
        )
    assert graph.get(API).group_name == "chat_agents"


def test_the_job_materializes_every_table_and_runs_every_check() -> None:
    defs = build_definitions(DeploymentSettings())
    job = defs.resolve_job_def("chat_agents_job")
    graph = defs.resolve_asset_graph()

    assert set(job.asset_layer.executable_asset_keys) == {
        *TABLE_KEYS.values(),
        *GOVERNANCE_KEYS.values(),
    }
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(graph.asset_check_keys)
    checks = {(key.asset_key.path[-1], key.name) for key in graph.asset_check_keys}
    for table in TABLES:
        assert (table.name, "primary_key") in checks
        assert (table.name, "not_emptied") in checks
        for reference in table.references:
            assert (table.name, f"references_{reference.table}") in checks
        if table.one_row_per:
            assert (table.name, f"one_row_per_{table.one_row_per}") in checks
    for table in GOVERNANCE_TABLES:
        assert (table.name, "primary_key") in checks


def test_the_dlt_op_is_in_the_pipeline_pool_so_runs_never_overlap() -> None:
    defs = build_definitions(DeploymentSettings())
    job = defs.resolve_job_def("chat_agents_job")
    pools = {node.name: node.definition.pools for node in job.graph.nodes}
    assert pools == {
        "chat_agents_load": {"chat_agents_pipeline"},
        "chat_agents_checks": {"chat_agents_pipeline"},
        "chat_agents_governance": {"chat_agents_pipeline"},
        "chat_agents_governance_checks": {"chat_agents_pipeline"},
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
        ("CHAT_AGENTS_MAX_RUNTIME_SECONDS", "all night", "or 0 for no maximum"),
        ("CHAT_AGENTS_OUTAGE_RETRIES", "-1", "give a whole number"),
        ("CHAT_AGENTS_OUTAGE_RETRY_DELAY_SECONDS", "later", "or 0 for no wait"),
        ("CHAT_AGENTS_FRESHNESS_SENSOR_INTERVAL_SECONDS", "0", "a positive number of seconds"),
        ("CHAT_AGENTS_OWNERS", "platform", "give email addresses or team:<name>"),
    ],
)
def test_a_bad_deployment_variable_fails_the_load_naming_it(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as failure:
        DeploymentSettings.from_env({variable: value})
    assert variable in str(failure.value)


def test_outage_retries_that_would_outlast_the_maximum_runtime_fail_the_load() -> None:
    environment = {
        "CHAT_AGENTS_MAX_RUNTIME_SECONDS": "3600",
        "CHAT_AGENTS_OUTAGE_RETRIES": "4",
        "CHAT_AGENTS_OUTAGE_RETRY_DELAY_SECONDS": "900",
    }
    with pytest.raises(ValueError, match="CHAT_AGENTS_OUTAGE_RETRIES=4") as failure:
        DeploymentSettings.from_env(environment)
    assert "CHAT_AGENTS_MAX_RUNTIME_SECONDS=3600" in str(failure.value)
    # Within the bound, the same retries are accepted.
    DeploymentSettings.from_env({**environment, "CHAT_AGENTS_OUTAGE_RETRY_DELAY_SECONDS": "600"})


@pytest.mark.parametrize("shipped", ["dagster.yaml", "deploy/dagster.yaml"])
def test_the_shipped_instance_monitors_runs_and_retries_crashed_runs_only(
    shipped: str, tmp_path: Path
) -> None:
    """Read by Dagster itself, as a deployment would (deploy/dagster.yaml without its storage,
    whose server the PostgreSQL tests provide)."""
    settings = yaml.safe_load((REPO / shipped).read_text())
    settings.pop("storage", None)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(settings))
    monitoring, retries = settings["run_monitoring"], settings["run_retries"]

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == monitoring["start_timeout_seconds"]
        assert instance.run_monitoring_max_runtime_seconds == monitoring["max_runtime_seconds"]
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == retries["max_retries"] >= 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        # Never two runs of one workspace (partition) at once.
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        assert {
            "key": "dagster/partition",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in queue.tag_concurrency_limits


@pytest.mark.parametrize(
    ("environment", "tag"),
    # Six hours when unset, as docs/deployment.md says; any other bound as given.
    [({}, str(6 * 3600)), ({"CHAT_AGENTS_MAX_RUNTIME_SECONDS": "7200"}, "7200")],
)
def test_the_job_carries_its_maximum_runtime_for_run_monitoring(
    environment: dict[str, str], tag: str
) -> None:
    """Run monitoring (dagster.yaml) ends a run of the job that outlives `dagster/max_runtime`."""
    defs = build_definitions(DeploymentSettings.from_env(environment))
    assert defs.resolve_job_def("chat_agents_job").tags["dagster/max_runtime"] == tag


def test_a_maximum_runtime_of_zero_leaves_the_job_without_its_own() -> None:
    defs = build_definitions(DeploymentSettings.from_env({"CHAT_AGENTS_MAX_RUNTIME_SECONDS": "0"}))
    assert "dagster/max_runtime" not in defs.resolve_job_def("chat_agents_job").tags
