"""Alerts under `dg dev`, as a deployment gets them: the environment configures a JSON webhook,
Slack and Teams (all posting to a receiver on loopback), the daemon ticks the alert sensors, and
each event sends one notification per channel: a failed run, a successful run whose WARN checks
failed, a stale episode (the freshness sensor, started from GraphQL as from the UI). A healthy
run sends none, and no notification holds a secret.
"""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dagster_graphql import DagsterGraphQLClient

from chat_agents_dagster.defs.alerts import CHECK_WARNING_SENSOR, RUN_FAILURE_SENSOR
from chat_agents_dagster.defs.deployment import ALERT_SENSOR_INTERVAL
from chat_agents_dagster.defs.sensors import SENSOR_NAME
from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster_tests.conftest import DAGSTER_TEST_URL, SLACK_TEST_TOKEN
from chat_agents_dagster_tests.dg_dev_session import (
    JOB,
    RUN_TIMEOUT,
    DagsterDev,
    dagster_dev,
    job_location,
    wait_for,
    wait_for_end,
    wait_for_runs,
    wait_until_serving,
    without_dg_telemetry,
)
from chat_agents_dagster_tests.helpers import API_KEY, point_at
from chat_agents_dagster_tests.receiver import SLACK_POST_PATH, TEAMS_PATH, WEBHOOK_PATH, Receiver

CHANNELS = (WEBHOOK_PATH, SLACK_POST_PATH, TEAMS_PATH)
REFUSED_KEY = "sk-refused-key-recognisable-0042"
SENSOR_INTERVAL_S = 2
# Tables go stale this long after their last materialization: long enough that no table is stale
# while the test's runs follow each other, short enough to wait for.
FRESHNESS_WINDOW_S = 90
NOTICE_TIMEOUT = 120.0

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { id sensorState { status
    ticks(limit: 20) { status timestamp endTimestamp error { message } runIds } } }
  ... on PythonError { message } } }
"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }
"""
STOP_SENSOR = """
mutation Stop($id: String!) { stopSensor(id: $id) {
  __typename ... on StopSensorMutationResult { instigationState { status } }
  ... on PythonError { message } } }
"""


class Sensors:
    def __init__(self, dev: DagsterDev, location: str, repository: str) -> None:
        self.dev, self.location, self.repository = dev, location, repository

    def _selector(self, name: str) -> dict[str, Any]:
        return {
            "selector": {
                "repositoryLocationName": self.location,
                "repositoryName": self.repository,
                "sensorName": name,
            }
        }

    def state(self, name: str) -> dict[str, Any]:
        sensor = self.dev.graphql(SENSOR_QUERY, self._selector(name))["sensorOrError"]
        assert sensor["__typename"] == "Sensor", sensor
        return dict(sensor)

    def ended_ticks(self, name: str, after: float = 0.0) -> list[dict[str, Any]]:
        """The sensor's ticks that started after `after` (epoch seconds) and have ended."""
        return [
            tick
            for tick in self.state(name)["sensorState"]["ticks"]
            if tick["status"] != "STARTED" and tick["timestamp"] > after
        ]

    def wait_for_tick(self, names: tuple[str, ...], after: float = 0.0) -> None:
        """Until each sensor has ended a tick started after `after`: it has seen what ended
        before then."""
        for name in names:
            wait_for(
                f"no tick of {name} after {after:.1f}",
                self.dev,
                lambda name=name: self.ended_ticks(name, after),  # type: ignore[misc]
                NOTICE_TIMEOUT,
            )

    def start(self, name: str) -> None:
        started = self.dev.graphql(START_SENSOR, self._selector(name))["startSensor"]
        assert started["__typename"] == "Sensor", started
        assert started["sensorState"]["status"] == "RUNNING"

    def stop(self, name: str) -> None:
        stopped = self.dev.graphql(STOP_SENSOR, {"id": self.state(name)["id"]})["stopSensor"]
        assert stopped["instigationState"]["status"] == "STOPPED", stopped

    def errors(self, name: str) -> list[str]:
        return [
            tick["error"]["message"]
            for tick in self.state(name)["sensorState"]["ticks"]
            if tick["error"]
        ]


def events(receiver: Receiver, path: str, event: str) -> list[dict[str, Any]]:
    """The webhook's payloads of `event`; for Slack and Teams, their message texts naming it."""
    return [message.json() for message in receiver.received(path) if event in message.body]


@pytest.mark.slow
# dagster_graphql 1.13's client calls gql with arguments gql has deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_dg_dev_alerts_once_per_failed_run_warned_run_and_stale_episode(
    start_sandbox: Callable[..., SandboxServer], alert_receiver: Receiver, tmp_path: Path
) -> None:
    sandbox = start_sandbox(World.generate(agents=12, seed=9, max_versions=2, max_aliases=2))
    env = dict(os.environ)  # the receiver's channels, set by the alert_receiver fixture
    point_at(sandbox, env.__setitem__)
    env.pop("DAGSTER_HOME", None)
    env.update(
        {
            ALERT_SENSOR_INTERVAL: str(SENSOR_INTERVAL_S),
            "CHAT_AGENTS_FRESHNESS_HOURS": str(FRESHNESS_WINDOW_S / 3600),
            "CHAT_AGENTS_FRESHNESS_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL_S),
            # Shipped stopped here, started below once the test wants a stale episode.
            "CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED": "false",
            "CHAT_AGENTS_NIGHTLY_ENABLED": "false",
            "CHAT_AGENTS_OUTAGE_RETRIES": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    without_dg_telemetry(env, tmp_path)
    alerting = (RUN_FAILURE_SENSOR, CHECK_WARNING_SENSOR)

    with dagster_dev(env, tmp_path) as dev:
        wait_until_serving(dev)
        location, repository = job_location(dev)
        sensors = Sensors(dev, location, repository)
        for name in alerting:  # running by default, since channels are configured
            assert sensors.state(name)["sensorState"]["status"] == "RUNNING"
        # A run-status sensor's first tick sets its cursor: runs ended before it are not seen.
        sensors.wait_for_tick(alerting)
        client = DagsterGraphQLClient("127.0.0.1", port_number=dev.port)

        def submit() -> str:
            return client.submit_job_execution(
                JOB, repository_location_name=location, repository_name=repository
            )

        # A healthy run: nothing.
        [healthy] = wait_for_runs(dev, [submit()], RUN_TIMEOUT)
        sensors.wait_for_tick(alerting, after=healthy["stats"]["endTime"])
        assert alert_receiver.received() == []

        # A failed run: the API refuses the deployment's key. One notification per channel.
        sandbox.config.api_key = REFUSED_KEY
        failing = submit()
        [failed] = wait_for_end(dev, [failing], RUN_TIMEOUT)
        assert failed["status"] == "FAILURE"
        wait_for(
            "the failed run's notifications",
            dev,
            lambda: all(events(alert_receiver, path, "failed") for path in CHANNELS),
            NOTICE_TIMEOUT,
        )
        sensors.wait_for_tick(alerting, after=time.time())  # and no second one
        for path in CHANNELS:
            [message] = alert_receiver.received(path)
            text = message.body
            assert JOB in text and failing in text and "chat_agents_load" in text, text
            assert f"{DAGSTER_TEST_URL}/runs/{failing}" in text
        failure_payload = alert_receiver.received(WEBHOOK_PATH)[0].json()
        assert failure_payload["event"] == "run_failed"
        assert failure_payload["run_id"] == failing

        # A run that succeeds with a schema change: its WARN checks failed. One each.
        sandbox.config.api_key = API_KEY
        sandbox.world.update_agent(sandbox.world.agents()[0]["id"], rating=4.5)
        [warned] = wait_for_runs(dev, [submit()], RUN_TIMEOUT)
        wait_for(
            "the WARN checks' notifications",
            dev,
            lambda: all(len(alert_receiver.received(path)) == 2 for path in CHANNELS),
            NOTICE_TIMEOUT,
        )
        sensors.wait_for_tick(alerting, after=time.time())
        warning_payload = alert_receiver.received(WEBHOOK_PATH)[1].json()
        assert warning_payload["event"] == "checks_warned"
        assert warning_payload["run_id"] == warned["runId"]
        assert {c["check"] for c in warning_payload["failed_checks"]} == {"column_schema_change"}
        for path in (SLACK_POST_PATH, TEAMS_PATH):
            assert warned["runId"] in alert_receiver.received(path)[1].body

        # A stale episode: the tables outlive their window. One alert, one catch-up run.
        sensors.start(SENSOR_NAME)
        wait_for(
            "the stale episode's notifications",
            dev,
            lambda: all(len(alert_receiver.received(path)) == 3 for path in CHANNELS),
            FRESHNESS_WINDOW_S + NOTICE_TIMEOUT,
        )
        stale_payload = alert_receiver.received(WEBHOOK_PATH)[2].json()
        assert stale_payload["event"] == "tables_stale"
        catch_up = wait_for(
            "the catch-up run",
            dev,
            lambda: [
                run_id for tick in sensors.ended_ticks(SENSOR_NAME) for run_id in tick["runIds"]
            ],
            NOTICE_TIMEOUT,
        )
        sensors.stop(SENSOR_NAME)  # before the catch-up's tables go stale in their turn
        [caught_up] = wait_for_runs(dev, catch_up, RUN_TIMEOUT)
        sensors.wait_for_tick(alerting, after=caught_up["stats"]["endTime"])

        # Three events, three notifications on each channel; no tick failed to send.
        assert {path: len(alert_receiver.received(path)) for path in CHANNELS} == dict.fromkeys(
            CHANNELS, 3
        )
        for name in (*alerting, SENSOR_NAME):
            assert sensors.errors(name) == [], name
        assert "not delivered" not in dev.log()
        for message in alert_receiver.received():
            for secret in (
                API_KEY,
                REFUSED_KEY,
                SLACK_TEST_TOKEN,
                alert_receiver.url(WEBHOOK_PATH),
                alert_receiver.url(TEAMS_PATH),
            ):
                assert secret not in message.body, (message.path, secret)
        shown = json.dumps(failure_payload, indent=2)
        print(f"\n[alerts] the failed run's JSON webhook payload:\n{shown}")
        print(
            f"[alerts] Slack's text:\n{alert_receiver.received(SLACK_POST_PATH)[0].json()['text']}"
        )
        print(f"[alerts] the stale episode's payload:\n{json.dumps(stale_payload, indent=2)}")
