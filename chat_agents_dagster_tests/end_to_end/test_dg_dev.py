"""`dg dev` end to end, as a user runs it: the project as `[tool.dg]` declares it, dagster.yaml,
a webserver and a daemon, runs launched through GraphQL and so through the run queue.

Proves that the code location loads, that one run materializes every table with the lineage
the UI draws and passes every asset check, in one process, that `dg dev` reads the
repository's dagster.yaml with DAGSTER_HOME unset, and that the `chat_agents_pipeline` pool keeps
two runs from overlapping.
The last two need a real webserver and daemon: in-process execution reads no dagster.yaml pool
settings and bypasses the run queue.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient

from chat_agents_dagster.defs.assets import POOL
from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster_tests.dagster_helpers import CHECK_SPECS
from chat_agents_dagster_tests.dg_dev_session import (
    JOB,
    LOGS_QUERY,
    REPO_ROOT,
    RUN_TIMEOUT,
    DagsterDev,
    dagster_dev,
    job_location,
    temporary_instance_dir,
    wait_for_runs,
    wait_until_serving,
    without_dg_telemetry,
)
from chat_agents_dagster_tests.helpers import point_at, telemetry_logs

AGENTS = 40

# A re-run makes about five rounds of requests, one after another (listing pages, then aliases).
SLOW_API_S = 1.2

API = "mistral/agents_api"
# The lineage the UI must draw, written out rather than derived from settings.py so that a change
# there that breaks it fails here. Keys are "/"-joined asset key paths.
EXPECTED_DEPENDENCIES: dict[str, set[str]] = {
    API: set(),
    "chat_agents_data/agents": {API},
    "chat_agents_data/agent_detail": {"chat_agents_data/agents"},
    "chat_agents_data/agent_versions": {"chat_agents_data/agents"},
    "chat_agents_data/agent_aliases": {"chat_agents_data/agents"},
    "chat_agents_data/agent_version_detail": {"chat_agents_data/agent_versions"},
    "chat_agents_data/agent_alias_history": {"chat_agents_data/agent_aliases"},
    "chat_agents_data/agent_version_changes": {"chat_agents_data/agent_versions"},
}
TABLE_KEYS = sorted(set(EXPECTED_DEPENDENCIES) - {API})
# Every check the code defines, by asset; a check missing from the UI must fail the test, not pass
# it by absence.
EXPECTED_CHECKS: dict[str, set[str]] = {
    key: {spec.name for spec in CHECK_SPECS if spec.asset_key.to_user_string() == key}
    for key in TABLE_KEYS
}


INSTANCE_QUERY = """
query Instance($pool: String) { instance { info runQueuingSupported
    poolConfig { poolGranularity defaultPoolLimit }
    concurrencyLimit(concurrencyKey: $pool) { limit usingDefaultLimit } } }
"""
ASSETS_QUERY = """
{ assetNodes {
    assetKey { path } dependencyKeys { path } isMaterializable
    assetMaterializations(limit: 1) { runId
      metadataEntries { label ... on IntMetadataEntry { intValue } } }
    assetChecksOrError { __typename ... on AssetChecks { checks { name
      executionForLatestMaterialization { runId status evaluation { success } } } } } } }
"""


def assert_ran_in_one_process(dev: DagsterDev, run_id: str) -> None:
    """The location's in-process executor: the run worker runs every step itself, starting no
    process per step (the multiprocess executor reports a step worker starting for each)."""
    events = dev.graphql(LOGS_QUERY, {"runId": run_id})["logsForRun"]["events"]
    kinds = {event["__typename"] for event in events}
    assert "StepWorkerStartingEvent" not in kinds and "StepWorkerStartedEvent" not in kinds
    engine = [
        event.get("message") or "" for event in events if event["__typename"] == "EngineEvent"
    ]
    assert any(message.startswith("Executing steps in process") for message in engine), engine


def key_string(key: dict[str, list[str]]) -> str:
    return "/".join(key["path"])


def assert_assets_materialized_and_checked(dev: DagsterDev, run_id: str) -> None:
    """Lineage exactly as expected; each table's latest materialization is from `run_id`, with
    rows; every check of each table ran against that materialization and passed."""
    nodes = {key_string(node["assetKey"]): node for node in dev.graphql(ASSETS_QUERY)["assetNodes"]}
    dependencies = {
        key: {key_string(dep) for dep in node["dependencyKeys"]} for key, node in nodes.items()
    }
    assert dependencies == EXPECTED_DEPENDENCIES
    assert not nodes[API]["isMaterializable"], "the API is external: observed, never materialized"

    for key in TABLE_KEYS:
        latest = nodes[key]["assetMaterializations"]
        assert latest, f"{key} has no materialization"
        assert latest[0]["runId"] == run_id, f"{key}'s latest materialization is from another run"
        metadata = {entry["label"]: entry.get("intValue") for entry in latest[0]["metadataEntries"]}
        assert (metadata.get("dagster/row_count") or 0) > 0, f"{key} is empty: {metadata}"

        checks = nodes[key]["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        outcomes = {
            check["name"]: check["executionForLatestMaterialization"] for check in checks["checks"]
        }
        assert EXPECTED_CHECKS[key], f"the code defines no check on {key}"
        assert set(outcomes) == EXPECTED_CHECKS[key]
        for name, execution in outcomes.items():
            assert execution is not None, f"{key} check {name} never ran"
            assert execution["runId"] == run_id, f"{key} check {name} ran in another run"
            assert execution["status"] == "SUCCEEDED", f"{key} check {name}: {execution}"
            assert execution["evaluation"]["success"], f"{key} check {name}: {execution}"

    agents_rows = nodes["chat_agents_data/agents"]["assetMaterializations"][0]["metadataEntries"]
    assert {"label": "dagster/row_count", "intValue": AGENTS} in agents_rows


@pytest.mark.slow
# dagster_graphql 1.13's client calls gql with arguments gql has deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_dg_dev_runs_the_job_with_lineage_checks_and_pool(
    start_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = start_sandbox(World.generate(agents=AGENTS, seed=1))
    # The environment the `isolated` fixture prepared (dlt state, DuckDB file and project dir
    # under tmp_path, telemetry off), plus the sandbox.
    env = dict(os.environ)
    point_at(sandbox, env.__setitem__)
    # Unset on purpose: what is under test is that dg dev then takes dagster.yaml from its
    # working directory, the repository root.
    env.pop("DAGSTER_HOME", None)
    # The nightly schedule is RUNNING by default; a test crossing 02:00 UTC would get an extra
    # run in the queue. The freshness sensor stays on: it cannot request a run for fresh tables.
    env["CHAT_AGENTS_NIGHTLY_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"  # the log files are what a failure message shows
    # With no DAGSTER_HOME, dg's telemetry is off only by a user's dg.toml (dg reads none from
    # pyproject.toml).
    without_dg_telemetry(env, tmp_path)
    home = tmp_path / "home"

    clock = time.monotonic()
    with dagster_dev(env, tmp_path) as dev:
        wait_until_serving(dev)
        location, repository = job_location(dev)
        elapsed = time.monotonic() - clock
        print(f"\n[dg dev] startup, spawn to /server_info and location loaded: {elapsed:.1f} s")

        # The instance is a throwaway one (DAGSTER_HOME unset) in the repository root, yet its
        # settings are exactly the repository's dagster.yaml: dg dev read it from there.
        instance_dir = temporary_instance_dir(dev.log())
        assert instance_dir is not None and instance_dir.parent == REPO_ROOT, dev.log_tail()
        instance = dev.graphql(INSTANCE_QUERY, {"pool": POOL})["instance"]
        repo_settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
        info = yaml.safe_load(instance["info"])
        assert {name: info.get(name) for name in repo_settings} == repo_settings
        assert info["telemetry"] == {"enabled": False}
        assert instance["poolConfig"] == {"poolGranularity": "run", "defaultPoolLimit": 1}
        assert instance["runQueuingSupported"], "runs must go through the queue to meet the pool"

        client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)

        def submit() -> str:
            return client.submit_job_execution(
                JOB, repository_location_name=location, repository_name=repository
            )

        clock = time.monotonic()
        first = submit()
        wait_for_runs(dev, [first], RUN_TIMEOUT)
        print(f"[dg dev] first run, submit to SUCCESS: {time.monotonic() - clock:.1f} s")
        assert sandbox.stats.total() > 0, "the run did not call the sandbox"
        assert_assets_materialized_and_checked(dev, first)
        assert_ran_in_one_process(dev, first)

        # Two runs submitted back to back: both queue at once, the pool lets one through. The
        # daemon looks at the queue every few seconds; a slow API makes the first run outlast one
        # of its looks, so that the second is seen waiting on the pool, not merely not yet seen.
        sandbox.config.latency_s = SLOW_API_S
        clock = time.monotonic()
        pair = [submit(), submit()]
        runs = wait_for_runs(dev, pair, 2 * RUN_TIMEOUT)
        elapsed = time.monotonic() - clock
        print(f"[dg dev] two pooled runs, submit to both SUCCESS: {elapsed:.1f} s")
        earlier, later = sorted((run["stats"] for run in runs), key=lambda s: s["startTime"])
        print(
            f"[dg dev] pooled: first ran {earlier['endTime'] - earlier['startTime']:.1f} s;"
            f" second queued {later['launchTime'] - later['enqueuedTime']:.1f} s, launched"
            f" {later['launchTime'] - earlier['endTime']:.1f} s after the first ended,"
            f" ran {later['endTime'] - later['startTime']:.1f} s"
        )
        # Meaningful only if the later run was waiting while the earlier one ran.
        assert later["enqueuedTime"] < earlier["endTime"]
        assert later["launchTime"] >= earlier["endTime"]
        assert later["startTime"] >= earlier["endTime"]
        # And it was the pool, at run granularity, that held it: the daemon's queue says so (in
        # its log: GraphQL keeps no record of why a run waited), and the pool has the default
        # limit of one.
        blocked = [
            line
            for line in dev.log().splitlines()
            if "is blocked by global concurrency limits" in line
            and f'"{POOL}": {{"granularity": "run"' in line
        ]
        assert any(run_id in line for line in blocked for run_id in pair), dev.log_tail()
        assert dev.graphql(INSTANCE_QUERY, {"pool": POOL})["instance"]["concurrencyLimit"] == {
            "limit": 1,
            "usingDefaultLimit": True,
        }
        last = max(runs, key=lambda run: run["stats"]["startTime"])["runId"]
        assert_assets_materialized_and_checked(dev, last)
    # The webserver's and daemon's uploader make the directory whatever the setting; what counts
    # is that no telemetry line was written to it.
    assert telemetry_logs(home / ".dagster") == [], "dg or Dagster wrote a telemetry log"
