"""Several workspaces under `dg dev`, as a user adds one: CHAT_AGENTS_WORKSPACES and a key per
workspace, and the UI shows the same five tables, partitioned by workspace; a backfill of every
partition, launched as the UI's "Materialize all partitions" launches it, loads each workspace
exactly, one run per partition through the queue."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import DATASET_NAME, DEFAULT_WORKSPACE, TABLES
from chat_agents_dagster_tests.dg_dev_session import (
    RUN_TIMEOUT,
    dagster_dev,
    job_location,
    wait_for,
    wait_for_runs,
    wait_until_serving,
    without_dg_telemetry,
)
from chat_agents_dagster_tests.helpers import point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth

EU, EU_KEY = "eu", "sk-test-eu-key-dg-dev"
WORKSPACES = [DEFAULT_WORKSPACE, EU]
TABLE_KEYS = [{"path": [DATASET_NAME, table.name]} for table in TABLES]

PARTITIONED_ASSETS = """
{ assetNodes { assetKey { path } partitionKeysByDimension { partitionKeys } } }
"""
LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message } ... on InvalidSubsetError { message } } }
"""
BACKFILL = """
query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs(limit: 10) { runId status tags { key value } } }
  ... on PythonError { message } } }
"""


@pytest.mark.slow
def test_dg_dev_shows_the_tables_partitioned_by_workspace_and_backfills_every_workspace(
    start_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = start_sandbox(World.generate(agents=12, seed=61, max_versions=3, max_aliases=2))
    eu_world = World.generate(agents=8, seed=62, max_versions=3, max_aliases=2)
    sandbox.add_workspace(EU_KEY, eu_world)
    env = dict(os.environ)
    point_at(sandbox, env.__setitem__)
    env.pop("DAGSTER_HOME", None)
    env.update(
        CHAT_AGENTS_WORKSPACES=",".join(WORKSPACES),
        SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__EU__API_KEY=EU_KEY,
        CHAT_AGENTS_NIGHTLY_ENABLED="false",
        CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    without_dg_telemetry(env, tmp_path)

    with dagster_dev(env, tmp_path) as dev:
        wait_until_serving(dev)
        job_location(dev)  # the location loaded
        nodes = {
            tuple(node["assetKey"]["path"]): node
            for node in dev.graphql(PARTITIONED_ASSETS)["assetNodes"]
        }
        for key in TABLE_KEYS:  # the same five tables, each partitioned by workspace
            dimensions = nodes[tuple(key["path"])]["partitionKeysByDimension"]
            assert [d["partitionKeys"] for d in dimensions] == [WORKSPACES], key

        launched = dev.graphql(
            LAUNCH_BACKFILL,
            {"params": {"assetSelection": TABLE_KEYS, "allPartitions": True}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched

        def finished() -> dict[str, Any] | None:
            backfill = dev.graphql(BACKFILL, {"id": launched["backfillId"]})
            state = backfill["partitionBackfillOrError"]
            done = state["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED")
            return state if done and len(state["runs"]) == len(WORKSPACES) else None

        state = wait_for("the backfill", dev, finished, 2 * RUN_TIMEOUT)
        runs = {
            {tag["key"]: tag["value"] for tag in run["tags"]}["dagster/partition"]: run["runId"]
            for run in state["runs"]
        }
        assert sorted(runs) == sorted(WORKSPACES)
        wait_for_runs(dev, list(runs.values()), RUN_TIMEOUT)

    pipeline = make_pipeline()
    assert_equals_truth(pipeline, sandbox.world)
    assert_equals_truth(pipeline, eu_world, EU)
