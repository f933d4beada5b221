"""Alerts: a failed run, a successful run with failed WARN checks, and a stale episode each send
one notification to every configured channel (a JSON webhook, Slack, Microsoft Teams), posted to
a real receiver on loopback; a healthy run sends none, and no notification holds a secret.

The sensors are evaluated tick by tick with the cursor carried from one tick to the next, as
the daemon does (a run-status sensor's first tick only sets its cursor); `test_dg_dev_alerts`
shows the same under `dg dev`'s daemon.
"""

import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
import pytest

# What `evaluate_tick` returns; dagster exports no public name for it.
from dagster._core.definitions.sensor_definition import SensorExecutionData

from chat_agents_dagster.defs.alerts import (
    CHECK_WARNING_SENSOR,
    RESOURCE_KEY,
    RUN_FAILURE_SENSOR,
    ChatAgentsAlerts,
)
from chat_agents_dagster.defs.deployment import (
    ALERT_SENSOR_INTERVAL,
    ALERT_WEBHOOK_URL,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    TEAMS_WEBHOOK_URL,
    AlertSettings,
    DeploymentSettingError,
    DeploymentSettings,
)
from chat_agents_dagster.defs.sensors import SENSOR_NAME, build_freshness_sensor
from chat_agents_dagster.defs.translator import table_asset_key
from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.tables import TABLES
from chat_agents_dagster_tests.conftest import DAGSTER_TEST_URL, SLACK_TEST_TOKEN
from chat_agents_dagster_tests.dagster_helpers import (
    Clock,
    check_results,
    definitions,
    materialize_all,
    run_job,
)
from chat_agents_dagster_tests.helpers import API_KEY, point_at
from chat_agents_dagster_tests.receiver import (
    SLACK_POST_PATH,
    TEAMS_PATH,
    WEBHOOK_PATH,
    Received,
    Receiver,
)

CHANNELS = (WEBHOOK_PATH, SLACK_POST_PATH, TEAMS_PATH)
JOB = "chat_agents_job"
REFUSED_KEY = "sk-refused-key-recognisable-0042"
KEYS = [table_asset_key(table.name) for table in TABLES]


def alert_definitions() -> dg.Definitions:
    """The code location as the environment configures it."""
    return definitions(alerts=AlertSettings.from_env(os.environ))


def alerts_of(defs: dg.Definitions) -> ChatAgentsAlerts:
    alerts = (defs.resources or {})[RESOURCE_KEY]
    assert isinstance(alerts, ChatAgentsAlerts)
    return alerts


class Ticker:
    """One sensor's ticks, each starting from the cursor the previous one left."""

    def __init__(
        self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance, alerts: ChatAgentsAlerts
    ) -> None:
        self.sensor, self.instance, self.alerts = sensor, instance, alerts
        self.cursor: str | None = None

    def tick(self) -> SensorExecutionData:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={RESOURCE_KEY: self.alerts}
        ) as context:
            data = self.sensor.evaluate_tick(context)
        if data.cursor is not None:
            self.cursor = data.cursor
        return data


def reactions(data: SensorExecutionData) -> dict[str, str | None]:
    """Run id -> the error a run-status sensor met on it (None: handled), for the runs this tick
    looked at. Dagster reports the error on the tick and moves past the run."""
    return {
        reaction.dagster_run.run_id: reaction.error.message if reaction.error else None
        for reaction in data.dagster_run_reactions or []
        if reaction.dagster_run is not None
    }


def tickers(defs: dg.Definitions, instance: dg.DagsterInstance) -> Iterator[Ticker]:
    """The two alert sensors, past the first tick that sets their cursors."""
    alerts = alerts_of(defs)
    for name in (RUN_FAILURE_SENSOR, CHECK_WARNING_SENSOR):
        ticker = Ticker(defs.resolve_sensor_def(name), instance, alerts)
        ticker.tick()
        yield ticker


def texts(received: Received) -> str:
    """Every text a channel's message carries (Teams nests them in its card)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return "\n".join(walk(received.json()))


def one_each(receiver: Receiver) -> dict[str, Received]:
    """What each channel got, asserting it got exactly one notification."""
    got = {path: receiver.received(path) for path in CHANNELS}
    assert {path: len(messages) for path, messages in got.items()} == dict.fromkeys(CHANNELS, 1)
    return {path: messages[0] for path, messages in got.items()}


def secrets(receiver: Receiver) -> list[str]:
    return [
        API_KEY,
        REFUSED_KEY,
        SLACK_TEST_TOKEN,
        receiver.url(WEBHOOK_PATH),
        receiver.url(TEAMS_PATH),
    ]


def assert_no_secret(receiver: Receiver) -> None:
    for request in receiver.received():
        for secret in secrets(receiver):
            assert secret not in request.body, (request.path, secret)


def assert_slack_posted_as_configured(message: Received) -> None:
    assert message.headers["authorization"] == f"Bearer {SLACK_TEST_TOKEN}"
    assert message.json()["channel"] == "#data-platform"


@pytest.fixture
def server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=8, seed=5, max_versions=2, max_aliases=2))
    point_at(server, monkeypatch.setenv)
    return server


def test_alerts_are_off_until_a_channel_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    off = definitions(alerts=AlertSettings.from_env(os.environ))
    monkeypatch.setenv(ALERT_WEBHOOK_URL, "https://hooks.example.test/secret-path")
    monkeypatch.setenv(ALERT_SENSOR_INTERVAL, "5")
    on = alert_definitions()

    for name in (RUN_FAILURE_SENSOR, CHECK_WARNING_SENSOR):
        assert off.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
        assert on.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
        assert off.resolve_sensor_def(name).minimum_interval_seconds == (
            AlertSettings().sensor_interval_seconds
        )
        assert on.resolve_sensor_def(name).minimum_interval_seconds == 5
    assert not alerts_of(off).configured and alerts_of(on).configured
    # The freshness sensor asks for catch-up runs either way.
    for defs in (off, on):
        assert defs.resolve_sensor_def(SENSOR_NAME).default_status == (
            dg.DefaultSensorStatus.RUNNING
        )


def test_a_failed_run_sends_one_notification_per_channel_naming_job_run_step_and_link(
    server: SandboxServer, alert_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(server, monkeypatch.setenv, key=REFUSED_KEY)
    defs, instance = alert_definitions(), dg.DagsterInstance.ephemeral()
    failures, warnings = tickers(defs, instance)
    assert alert_receiver.received() == []  # setting the cursors sends nothing

    result = run_job(defs, instance)
    ticks = [failures.tick(), warnings.tick()]

    assert not result.success
    run_id = result.run_id
    assert reactions(ticks[0]) == {run_id: None}  # sent, without error
    assert reactions(ticks[1]) == {}  # the WARN-check sensor looks only at successes
    failed_steps = {event.step_key for event in result.get_step_failure_events()}
    assert failed_steps
    got = one_each(alert_receiver)
    for message in got.values():
        text = texts(message)
        assert JOB in text and run_id in text, message.path
        assert all(f"Step {step} failed" in text for step in failed_steps), text
        assert "401" in text or "refused" in text.lower(), text  # says why
    payload = got[WEBHOOK_PATH].json()
    assert payload["event"] == "run_failed"
    assert payload["job"] == JOB and payload["run_id"] == run_id
    assert payload["url"] == f"{DAGSTER_TEST_URL}/runs/{run_id}"
    assert {step["step"] for step in payload["failed_steps"]} == failed_steps
    assert f"<{DAGSTER_TEST_URL}/runs/{run_id}>" in got[SLACK_POST_PATH].json()["text"]
    assert f"({DAGSTER_TEST_URL}/runs/{run_id})" in texts(got[TEAMS_PATH])
    assert_slack_posted_as_configured(got[SLACK_POST_PATH])
    assert_no_secret(alert_receiver)

    assert reactions(failures.tick()) == {}  # the same failure is not looked at again
    assert len(alert_receiver.received()) == len(CHANNELS)


def test_a_healthy_run_sends_nothing(server: SandboxServer, alert_receiver: Receiver) -> None:
    defs, instance = alert_definitions(), dg.DagsterInstance.ephemeral()
    failures, warnings = tickers(defs, instance)

    result = run_job(defs, instance)
    ticks = [failures.tick(), warnings.tick()]

    assert result.success
    assert reactions(ticks[0]) == {}  # a run-failure sensor does not look at a success
    assert reactions(ticks[1]) == {result.run_id: None}  # looked at, nothing to say
    assert alert_receiver.received() == []


def test_a_schema_change_sends_one_notification_listing_the_failed_warn_checks(
    server: SandboxServer, alert_receiver: Receiver
) -> None:
    defs, instance = alert_definitions(), dg.DagsterInstance.ephemeral()
    failures, warnings = tickers(defs, instance)
    assert run_job(defs, instance).success
    failures.tick()
    warnings.tick()
    assert alert_receiver.received() == []  # a first materialization warns about nothing
    server.world.update_agent(server.world.agents()[0]["id"], rating=4.5)

    result = run_job(defs, instance)
    ticks = [failures.tick(), warnings.tick()]

    assert result.success
    assert reactions(ticks[0]) == {} and reactions(ticks[1]) == {result.run_id: None}
    failed = {
        (table, name)
        for (table, name), evaluation in check_results(result).items()
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    }
    assert failed  # the drift failed WARN checks; which ones is the checks' business
    got = one_each(alert_receiver)
    payload = got[WEBHOOK_PATH].json()
    assert payload["event"] == "checks_warned" and payload["run_id"] == result.run_id
    listed = {(c["asset"].split("/")[-1], c["check"]) for c in payload["failed_checks"]}
    assert listed == failed
    for message in got.values():
        text = texts(message)
        assert result.run_id in text
        assert all(f"{table} {name} failed (WARN)" in text for table, name in failed), text
    assert_no_secret(alert_receiver)

    assert reactions(warnings.tick()) == {}
    assert len(alert_receiver.received()) == len(CHANNELS)


def freshness_ticker(instance: dg.DagsterInstance, clock: Clock) -> Ticker:
    settings = DeploymentSettings(
        freshness_window=timedelta(hours=26), alerts=AlertSettings.from_env(os.environ)
    )
    sensor = build_freshness_sensor(JOB, KEYS, settings, clock=clock)
    return Ticker(sensor, instance, alerts_of(alert_definitions()))


def test_a_stale_episode_sends_one_notification_and_a_new_episode_another(
    alert_receiver: Receiver,
) -> None:
    instance, clock = dg.DagsterInstance.ephemeral(), Clock()
    sensor = freshness_ticker(instance, clock)
    materialize_all(instance)
    clock.now = time.time() + 25 * 3600
    assert not sensor.tick().run_requests and alert_receiver.received() == []  # fresh

    clock.now = time.time() + 27 * 3600
    first = sensor.tick()
    clock.now += 6 * 3600
    again = sensor.tick()  # the same episode: the same run key, no second alert

    assert first.run_requests and again.run_requests
    run_key = first.run_requests[0].run_key
    assert again.run_requests[0].run_key == run_key
    got = one_each(alert_receiver)
    payload = got[WEBHOOK_PATH].json()
    assert payload["event"] == "tables_stale" and payload["run_key"] == run_key
    assert payload["job"] == JOB
    assert {asset["asset"] for asset in payload["stale_assets"]} == {
        key.to_user_string() for key in KEYS
    }
    assert {asset["url"] for asset in payload["stale_assets"]} == {
        f"{DAGSTER_TEST_URL}/assets/{'/'.join(key.path)}" for key in KEYS
    }
    for message in got.values():
        assert JOB in texts(message) and "26 h freshness window" in texts(message)
    assert_no_secret(alert_receiver)

    materialize_all(instance)  # the catch-up ran
    clock.now = time.time() + 30 * 3600
    later = sensor.tick()
    assert later.run_requests and later.run_requests[0].run_key != run_key
    assert len(alert_receiver.received(WEBHOOK_PATH)) == 2
    assert (
        alert_receiver.received(WEBHOOK_PATH)[1].json()["run_key"] == later.run_requests[0].run_key
    )


def closed_port_url(path: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def refuse_webhook_and_slack_token(receiver: Receiver, env: pytest.MonkeyPatch) -> None:
    receiver.refuse(WEBHOOK_PATH, 500)
    env.setenv(SLACK_TOKEN, "xoxb-revoked-token-recognisable")


def teams_unreachable(receiver: Receiver, env: pytest.MonkeyPatch) -> None:
    env.setenv(TEAMS_WEBHOOK_URL, closed_port_url(TEAMS_PATH))


def webhook_not_a_url(receiver: Receiver, env: pytest.MonkeyPatch) -> None:
    env.setenv(ALERT_WEBHOOK_URL, "hooks.example.test/T0/secret")


# Each failure: what breaks, the channels that must still get the notification, and what the
# error must say of each broken channel.
FAILURES: dict[str, tuple[Callable[[Receiver, pytest.MonkeyPatch], None], set[str], list[str]]] = {
    "webhook_500_and_slack_refuses_the_token": (
        refuse_webhook_and_slack_token,
        {TEAMS_PATH},
        [
            f"the JSON webhook ({ALERT_WEBHOOK_URL}): answered HTTP 500",
            f"Slack #data-platform ({SLACK_TOKEN}): Slack answered invalid_auth",
        ],
    ),
    "teams_unreachable": (
        teams_unreachable,
        {WEBHOOK_PATH, SLACK_POST_PATH},
        [f"Microsoft Teams ({TEAMS_WEBHOOK_URL}): could not be reached (ConnectionError)"],
    ),
    "webhook_not_a_url": (
        webhook_not_a_url,
        {SLACK_POST_PATH, TEAMS_PATH},
        [f"the JSON webhook ({ALERT_WEBHOOK_URL}): is not an http(s) URL"],
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_channel_that_fails_is_named_without_its_secret_and_the_others_still_get_it(
    server: SandboxServer,
    alert_receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    breaks, delivered, said = FAILURES[failure]
    breaks(alert_receiver, monkeypatch)
    environment_secrets = [
        os.environ[name] for name in (ALERT_WEBHOOK_URL, SLACK_TOKEN, TEAMS_WEBHOOK_URL)
    ]
    point_at(server, monkeypatch.setenv, key=REFUSED_KEY)
    defs, instance = alert_definitions(), dg.DagsterInstance.ephemeral()
    failures, _ = tickers(defs, instance)

    result = run_job(defs, instance)
    tick = failures.tick()

    assert not result.success
    message = reactions(tick)[result.run_id] or ""
    assert all(line in message for line in said), message
    assert all(secret not in message for secret in environment_secrets), message
    for path in delivered:  # the broken channels are named above; the rest got it
        assert len(alert_receiver.received(path)) == 1
    assert_no_secret(alert_receiver)

    # A stale episode still gets its catch-up run, the failure logged on the tick.
    clock = Clock()
    sensor = freshness_ticker(instance, clock)
    materialize_all(instance)
    clock.now = time.time() + 27 * 3600
    assert len(sensor.tick().run_requests or []) == 1


def test_a_slack_token_without_a_channel_or_a_bad_address_fails_the_load_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(DeploymentSettingError, match=f"{SLACK_CHANNEL} is not"):
        AlertSettings.from_env({SLACK_TOKEN: "xoxb-1"})
    with pytest.raises(DeploymentSettingError, match=f"{SLACK_TOKEN} is not"):
        AlertSettings.from_env({SLACK_CHANNEL: "#data"})
    with pytest.raises(DeploymentSettingError, match="CHAT_AGENTS_DAGSTER_URL='dagster:3000'"):
        AlertSettings.from_env({"CHAT_AGENTS_DAGSTER_URL": "dagster:3000"})
    # A secret is only checked for presence when the location loads: never quoted in an error.
    assert AlertSettings.from_env({ALERT_WEBHOOK_URL: "not a url"}).webhook
