"""Several workspaces on PostgreSQL through Dagster: two partitions' runs at once, each in its
own process, on an empty dataset, both end exact (the run that would create the tables at the
same time as the other waits for it), and the next night's run side by side."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import URL

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import DEFAULT_WORKSPACE
from chat_agents_dagster_tests.helpers import REPO, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth

EU, EU_KEY = "eu", "sk-test-eu-key-recognisable"
WORKSPACES = (DEFAULT_WORKSPACE, EU)
RUN_TIMEOUT_S = 300


def at_once() -> dict[str, dict[str, Any]]:
    """Both partitions' runs started together, each in a process of its own (as run workers
    are: dlt's pipelines are not safe in two threads of one process)."""
    env = {
        **os.environ,
        "CHAT_AGENTS_WORKSPACES": ",".join(WORKSPACES),
        "PYTHONPATH": str(REPO),  # the tests' package, run from the test's own directory
    }
    command = [sys.executable, "-m", "chat_agents_dagster_tests.partition_run"]
    processes = {
        workspace: subprocess.Popen(
            [*command, workspace], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for workspace in WORKSPACES
    }
    results = {}
    for workspace, process in processes.items():
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
        assert process.returncode == 0, err.decode()[-3000:]
        results[workspace] = json.loads(out.decode().strip().splitlines()[-1])
    return results


def test_two_partitions_at_once_on_postgresql_both_end_exact(
    postgres_warehouse: URL,
    start_sandbox: Callable[..., SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_sandbox(World.generate(agents=20, seed=51, max_versions=3, max_aliases=2))
    eu_world = World.generate(agents=15, seed=52, max_versions=3, max_aliases=2)
    server.add_workspace(EU_KEY, eu_world)
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__EU__API_KEY", EU_KEY)
    worlds = {DEFAULT_WORKSPACE: server.world, EU: eu_world}

    first = at_once()  # an empty dataset: both runs would create its tables
    for world in worlds.values():
        world.create_agent(name="Born after the first night", model="mistral-small-latest")
        world.update_agent(world.agents()[0]["id"], instructions="Changed on the second night")
    second = at_once()  # the tables exist: side by side

    pipeline = make_pipeline()
    for results in (first, second):
        for workspace, result in results.items():
            assert result["failed_checks"] == [], workspace
            assert result["success"], (workspace, result["errors"])
    for workspace, world in worlds.items():
        assert_equals_truth(pipeline, world, workspace)
