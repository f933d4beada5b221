"""The nightly schedule and the freshness sensor: what they ask for, when, and how often."""

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.alerts import RESOURCE_KEY, ChatAgentsAlerts
from chat_agents_dagster.defs.deployment import DeploymentSettingError, DeploymentSettings
from chat_agents_dagster.defs.schedules import build_chat_agents_job, build_nightly_schedule
from chat_agents_dagster.defs.sensors import build_freshness_sensor
from chat_agents_dagster.tables import TABLES
from chat_agents_dagster_tests.dagster_helpers import Clock, materialize_all

KEYS = [dg.AssetKey(["chat_agents_data", table.name]) for table in TABLES]
HOUR = 3600.0


def test_the_nightly_schedule_defaults_to_two_am_utc_and_runs_without_a_toggle() -> None:
    settings = DeploymentSettings.from_env({})
    schedule = build_nightly_schedule(settings, build_chat_agents_job(settings))
    assert schedule.name == "chat_agents_nightly"
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_tick_gives_a_valid_run_request_for_the_job_in_the_configured_timezone() -> None:
    settings = DeploymentSettings.from_env(
        {"CHAT_AGENTS_NIGHTLY_CRON": "30 3 * * 1-5", "CHAT_AGENTS_TIMEZONE": "Europe/Paris"}
    )
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("chat_agents_nightly")
    tick = datetime(2026, 11, 27, 3, 30, tzinfo=ZoneInfo("Europe/Paris"))

    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))

    assert schedule.cron_schedule == "30 3 * * 1-5"
    assert schedule.execution_timezone == "Europe/Paris"
    assert data.run_requests is not None and len(data.run_requests) == 1
    request = data.run_requests[0]
    job = defs.resolve_job_def("chat_agents_job")
    assert request.job_name in (None, "chat_agents_job") and schedule.job_name == job.name
    dg.validate_run_config(job, request.run_config)


def test_the_schedule_can_be_shipped_stopped_by_environment() -> None:
    settings = DeploymentSettings.from_env({"CHAT_AGENTS_NIGHTLY_ENABLED": "false"})
    assert (
        build_nightly_schedule(settings, build_chat_agents_job(settings)).default_status
        == dg.DefaultScheduleStatus.STOPPED
    )


def test_a_bad_cron_fails_the_load_naming_the_variable() -> None:
    settings = DeploymentSettings.from_env({"CHAT_AGENTS_NIGHTLY_CRON": "every night"})
    with pytest.raises(DeploymentSettingError, match="CHAT_AGENTS_NIGHTLY_CRON='every night'"):
        build_nightly_schedule(settings, build_chat_agents_job(settings))


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    resources = {RESOURCE_KEY: ChatAgentsAlerts()}  # no channel: the sensor only asks for runs
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        data = sensor.evaluate_tick(context)
    return list(data.run_requests or [])


def test_the_freshness_sensor_asks_for_one_catch_up_run_per_stale_episode() -> None:
    instance = dg.DagsterInstance.ephemeral()
    clock = Clock()
    settings = DeploymentSettings(freshness_window=timedelta(hours=26))
    sensor = build_freshness_sensor("chat_agents_job", KEYS, settings, clock=clock)

    assert tick(sensor, instance) == []  # never materialized: the schedule's job, not a catch-up

    materialize_all(instance)
    clock.now = time.time() + 25 * HOUR
    assert tick(sensor, instance) == []  # within the window

    clock.now = time.time() + 27 * HOUR  # the nightly run was missed
    first = tick(sensor, instance)
    clock.now += 6 * HOUR  # still the same episode, later ticks
    again = tick(sensor, instance)
    assert len(first) == 1 and len(again) == 1
    assert first[0].run_key == again[0].run_key  # Dagster launches one run per run key
    assert first[0].tags["chat_agents/trigger"] == "freshness-catch-up"

    materialize_all(instance)  # the catch-up ran: fresh again
    clock.now = time.time() + HOUR
    assert tick(sensor, instance) == []

    clock.now = time.time() + 30 * HOUR  # a new episode gets a new run key
    later = tick(sensor, instance)
    assert len(later) == 1 and later[0].run_key != first[0].run_key


def test_the_sensor_runs_by_default_and_can_be_shipped_stopped() -> None:
    on = build_freshness_sensor("chat_agents_job", KEYS, DeploymentSettings.from_env({}))
    off = build_freshness_sensor(
        "chat_agents_job",
        KEYS,
        DeploymentSettings.from_env({"CHAT_AGENTS_FRESHNESS_SENSOR_ENABLED": "false"}),
    )
    assert on.name == "chat_agents_freshness_sensor"
    assert on.job_name == "chat_agents_job"
    assert on.default_status == dg.DefaultSensorStatus.RUNNING
    assert off.default_status == dg.DefaultSensorStatus.STOPPED
