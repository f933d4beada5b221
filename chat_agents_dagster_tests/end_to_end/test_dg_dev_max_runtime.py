"""Never stuck, under `dg dev` with the repository's dagster.yaml: a run that crawls past the
job's maximum runtime is ended by run monitoring and marked failed, having committed nothing,
and Dagster's run retries launch it again, which ends exact once the API is fast again; a run
whose worker is killed is retried the same way; a run whose step failed (a refused key) is not.

Only a daemon does any of this (run monitoring and run retries are the daemon's), so it takes a
real webserver and daemon; in-process execution has neither.
"""

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster_tests.dagster_helpers import CHECK_SPECS
from chat_agents_dagster_tests.dg_dev_session import (
    JOB,
    REPO_ROOT,
    RUN_TIMEOUT,
    DagsterDev,
    dagster_dev,
    job_location,
    run_errors,
    run_record,
    wait_for,
    wait_for_end,
    wait_for_runs,
    wait_until_serving,
    without_dg_telemetry,
)
from chat_agents_dagster_tests.helpers import point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth, recorded_loads

AGENTS = 40
MAX_RUNTIME_S = 30
# The API answers each request this late: the run's first request (its listing's first page) is
# still unanswered when the maximum runtime is reached, whatever the machine's speed, so the run
# cannot end before its bound. The client waits that long (RUNTIME__REQUEST_TIMEOUT), so that the
# run crawls rather than fails on timeouts.
SLOW_API_S = 45.0
REQUEST_TIMEOUT_S = 120
# The only setting of dagster.yaml the test changes: the daemon's look at running runs every 120 s
# would make the test wait minutes for what it checks.
POLL_INTERVAL_S = 2
# Run monitoring looks at a run every POLL_INTERVAL_S; the code server finds a dead run worker
# within about 20 s; the retry daemon consumes failures every 5 s.
NOTICE_TIMEOUT = 120.0

EVENTS_QUERY = """
query Events($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename ... on MessageEvent { message timestamp } } } } }
"""
CHECKS_QUERY = """
{ assetNodes { assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { runId status } } } } } }
"""


def events_of(dev: DagsterDev, run_id: str) -> list[tuple[str, str, float]]:
    """(event type, message, epoch seconds) of every event of the run, in order."""
    events = dev.graphql(EVENTS_QUERY, {"runId": run_id})["logsForRun"]["events"]
    return [
        (event["__typename"], event.get("message") or "", int(event["timestamp"]) / 1000)
        for event in events
        if "timestamp" in event
    ]


def first_event(
    dev: DagsterDev, run_id: str, kind: str, says: str = ""
) -> tuple[str, str, float] | None:
    found = [e for e in events_of(dev, run_id) if e[0] == kind and says in e[1]]
    return found[0] if found else None


def retry_of(dev: DagsterDev, run_id: str) -> str:
    """The run Dagster's run retries launched for `run_id`, once they have."""
    return str(
        wait_for(
            f"no automatic retry of {run_id}",
            dev,
            lambda: run_record(dev, run_id)["tags"].get("dagster/auto_retry_run_id"),
            NOTICE_TIMEOUT,
        )
    )


def worker_pid(dev: DagsterDev, run_id: str) -> int:
    """The run worker's pid, as the code server reports it when it starts the process."""
    event = wait_for(
        f"run {run_id} has no worker process",
        dev,
        lambda: first_event(dev, run_id, "EngineEvent", "Started process for run (pid: "),
        NOTICE_TIMEOUT,
    )
    found = re.search(r"\(pid: (\d+)\)", event[1])
    assert found, event
    return int(found.group(1))


def assert_every_check_passed_in(dev: DagsterDev, run_id: str) -> None:
    outcomes = {
        (node["assetKey"]["path"][-1], check["name"]): check["executionForLatestMaterialization"]
        for node in dev.graphql(CHECKS_QUERY)["assetNodes"]
        for check in (node["assetChecksOrError"] or {}).get("checks", [])
    }
    assert set(outcomes) == {(spec.asset_key.path[-1], spec.name) for spec in CHECK_SPECS}
    for check, execution in outcomes.items():
        assert execution is not None and execution["runId"] == run_id, (check, execution)
        assert execution["status"] == "SUCCEEDED", (check, execution)


def change_the_world(world: World) -> None:
    """Something for the crawling run to load: new agents and new versions."""
    for n in range(3):
        world.create_agent(name=f"Born tonight {n}", model="mistral-small-latest")
    for agent in world.agents()[:3]:
        world.update_agent(agent["id"], instructions=f"Changed tonight: {agent['id']}")


def instance_home(tmp_path: Path) -> Path:
    """DAGSTER_HOME holding the repository's dagster.yaml, with only the monitoring daemon's poll
    interval shortened."""
    settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert settings["run_monitoring"]["enabled"] and settings["run_retries"]["enabled"]
    assert settings["run_retries"]["max_retries"] >= 1
    assert settings["run_retries"]["retry_on_asset_or_op_failure"] is False
    settings["run_monitoring"]["poll_interval_seconds"] = POLL_INTERVAL_S
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home


@pytest.mark.slow
# dagster_graphql 1.13's client calls gql with arguments gql has deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_dg_dev_ends_a_run_past_its_maximum_runtime_and_retries_crashes_not_failures(
    start_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = start_sandbox(World.generate(agents=AGENTS, seed=5))
    database = tmp_path / "warehouse.duckdb"  # where the `isolated` fixture points DuckDB
    env = dict(os.environ)
    point_at(sandbox, env.__setitem__)
    env.update(
        DAGSTER_HOME=str(instance_home(tmp_path)),
        CHAT_AGENTS_MAX_RUNTIME_SECONDS=str(MAX_RUNTIME_S),
        # Outage retries wait inside the run and must stay below its maximum runtime.
        CHAT_AGENTS_OUTAGE_RETRIES="0",
        # Every run here is the test's: none from the schedule, none from the catch-up sensor.
        CHAT_AGENTS_NIGHTLY_ENABLED="false",
        CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED="false",
        RUNTIME__REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S),
        PYTHONUNBUFFERED="1",
    )
    without_dg_telemetry(env, tmp_path)

    with dagster_dev(env, tmp_path) as dev:
        wait_until_serving(dev)
        location, repository = job_location(dev)
        client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)

        def submit() -> str:
            return client.submit_job_execution(
                JOB, repository_location_name=location, repository_name=repository
            )

        wait_for_runs(dev, [submit()], RUN_TIMEOUT)
        loads_before = recorded_loads(database)

        # A night on which the API answers too slowly for the run to end within its maximum.
        change_the_world(sandbox.world)
        sandbox.config.latency_s = SLOW_API_S
        clock = time.time()
        crawling = submit()
        [ended] = wait_for_end(dev, [crawling], MAX_RUNTIME_S + NOTICE_TIMEOUT)
        sandbox.config.latency_s = 0.0
        assert ended["status"] == "FAILURE", run_errors(dev, crawling)
        canceling = first_event(dev, crawling, "RunCancelingEvent", "maximum runtime")
        failure = first_event(dev, crawling, "RunFailureEvent")
        assert canceling is not None, events_of(dev, crawling)
        assert failure is not None and "Exceeded maximum runtime" in failure[1], failure
        assert f"{MAX_RUNTIME_S} seconds" in failure[1]
        # Ended by its bound, not before it, and its worker process with it.
        assert ended["stats"]["endTime"] - ended["stats"]["startTime"] >= MAX_RUNTIME_S
        pid = worker_pid(dev, crawling)
        exited = wait_for(
            f"the crawling run's worker {pid} never exited",
            dev,
            lambda: first_event(
                dev, crawling, "EngineEvent", f"Process for run exited (pid: {pid}"
            ),
            NOTICE_TIMEOUT,
        )

        # Ended without a failure reason, so run retries treat it as a crash: launched again.
        retry = retry_of(dev, crawling)
        [retried] = wait_for_runs(dev, [retry], RUN_TIMEOUT)
        run = run_record(dev, retry)
        assert run["parentRunId"] == crawling and run["tags"]["dagster/retry_number"] == "1"
        assert run["tags"]["dagster/max_runtime"] == str(MAX_RUNTIME_S)
        # The ended run committed nothing; the retry loaded the whole night, exact, checks passed.
        assert recorded_loads(database) == loads_before + 1
        assert_equals_truth(make_pipeline(), sandbox.world)
        assert_every_check_passed_in(dev, retry)

        start = ended["stats"]["startTime"]
        timeline = [
            ("crawling run submitted", clock),
            ("crawling run started", start),
            ("run monitoring: canceling", canceling[2]),
            ("crawling run failed", failure[2]),
            ("its worker exited", exited[2]),
            ("retry enqueued", retried["stats"]["enqueuedTime"]),
            ("retry started", retried["stats"]["startTime"]),
            ("retry succeeded", retried["stats"]["endTime"]),
        ]
        print(
            f"\n[max runtime] {MAX_RUNTIME_S} s bound, API answering in {SLOW_API_S} s,"
            f" run monitoring polling every {POLL_INTERVAL_S} s; seconds from the run's start:"
        )
        for label, at in sorted(timeline, key=lambda entry: entry[1]):
            print(f"[max runtime] {at - start:+7.1f} s  {label}")
        print(f"[max runtime] failure: {failure[1]}")
        # The ended run's worker lives on until its requests in flight are answered; a retry
        # that starts meanwhile waits for the run lock (its log, not Dagster's, says so).
        lock_waits = dev.log().count("waiting for it to end")
        print(f"[max runtime] runs that waited for the run lock: {lock_waits}")

        # A crash: the run worker killed mid-load. Failed by the code server, retried.
        change_the_world(sandbox.world)
        sandbox.config.latency_s = SLOW_API_S
        loads_before, requests_before = recorded_loads(database), sandbox.stats.total()
        crashing = submit()
        pid = worker_pid(dev, crashing)
        wait_for(
            "the run made no request",
            dev,
            lambda: sandbox.stats.total() > requests_before,
            NOTICE_TIMEOUT,
        )
        os.kill(pid, signal.SIGKILL)
        [crashed] = wait_for_end(dev, [crashing], NOTICE_TIMEOUT)
        sandbox.config.latency_s = 0.0
        assert crashed["status"] == "FAILURE"
        assert "dagster/failure_reason" not in run_record(dev, crashing)["tags"]
        retry = retry_of(dev, crashing)
        [after_crash] = wait_for_runs(dev, [retry], RUN_TIMEOUT)
        assert recorded_loads(database) == loads_before + 1
        assert_equals_truth(make_pipeline(), sandbox.world)
        assert_every_check_passed_in(dev, retry)
        print(
            f"[crash] worker {pid} killed; run failed"
            f" {crashed['stats']['endTime'] - crashed['stats']['startTime']:.1f} s after it"
            f" started; retry succeeded"
            f" {after_crash['stats']['endTime'] - crashed['stats']['endTime']:.1f} s after that"
        )

        # A step failure: the key refused. Not retried, and the daemon says why.
        sandbox.config.api_key = "a-key-the-deployment-does-not-have"
        refused = submit()
        [failed] = wait_for_end(dev, [refused], RUN_TIMEOUT)
        assert failed["status"] == "FAILURE"
        wait_for(
            "the retry daemon never judged the refused run",
            dev,
            lambda: first_event(dev, refused, "EngineEvent", "Not retrying run"),
            NOTICE_TIMEOUT,
        )
        tags = run_record(dev, refused)["tags"]
        assert tags["dagster/failure_reason"] == "STEP_FAILURE"
        assert tags["dagster/will_retry"] == "false"
        assert "dagster/auto_retry_run_id" not in tags
