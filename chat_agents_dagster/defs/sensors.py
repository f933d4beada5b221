"""A sensor that notices stale tables (the nightly run missed or failed) and asks for one
catch-up run per stale episode.

Staleness is computed from public instance APIs (the latest materialization of each table)
against the same window as the assets' FreshnessPolicy, rather than from the freshness daemon's
internal state records. An episode is the set of stale tables with the materializations they
are stuck at; the run key is derived from it, so Dagster launches one run per episode however
often the sensor ticks, and a new materialization starts a new episode. The sensor's cursor is
the last episode it sent an alert for, so each episode alerts once; a failed delivery is logged on
the tick and never holds back the catch-up run.
"""

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from chat_agents_dagster.defs.alerts import AlertDeliveryError, ChatAgentsAlerts, stale_alert
from chat_agents_dagster.defs.deployment import DeploymentSettings

SENSOR_NAME = "chat_agents_freshness_sensor"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hours(window: timedelta) -> str:
    """`26 h` rather than timedelta's `1 day, 2:00:00`."""
    return f"{window.total_seconds() / 3600:g} h"


def stale_assets(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey], window: timedelta, now: float
) -> tuple[list[tuple[dg.AssetKey, float]], list[dg.AssetKey]]:
    """(stale assets with their last materialization time, assets never materialized)."""
    stale: list[tuple[dg.AssetKey, float]] = []
    never: list[dg.AssetKey] = []
    for key in keys:
        event = instance.get_latest_materialization_event(key)
        if event is None:
            never.append(key)
        elif now - event.timestamp > window.total_seconds():
            stale.append((key, event.timestamp))
    return stale, never


def episode_run_key(stale: Sequence[tuple[dg.AssetKey, float]]) -> str:
    episode = ";".join(f"{key.to_user_string()}@{ts:.6f}" for key, ts in sorted(stale))
    return "freshness-catch-up-" + hashlib.sha256(episode.encode()).hexdigest()[:16]


def build_freshness_sensor(
    job_name: str,
    keys: Sequence[dg.AssetKey],
    settings: DeploymentSettings,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    status = dg.DefaultSensorStatus.RUNNING
    if not settings.freshness_sensor_enabled:
        status = dg.DefaultSensorStatus.STOPPED
    window = settings.freshness_window
    label = hours(window)

    @dg.sensor(
        name=SENSOR_NAME,
        job_name=job_name,
        minimum_interval_seconds=settings.freshness_sensor_interval_seconds,
        default_status=status,
        description=f"One catch-up run when a table is older than {label} (its freshness window).",
    )
    def chat_agents_freshness_sensor(
        context: dg.SensorEvaluationContext, chat_agents_alerts: ChatAgentsAlerts
    ) -> dg.SensorResult | dg.SkipReason:
        stale, never = stale_assets(context.instance, keys, window, clock())
        if never:
            context.log.info(
                "Never materialized, left to the schedule: "
                + ", ".join(key.to_user_string() for key in never)
            )
        if not stale:
            if len(never) == len(keys):
                return dg.SkipReason(
                    "No table is materialized yet; the nightly schedule loads them."
                )
            return dg.SkipReason(f"Every materialized table is within its {label} window.")
        why = ", ".join(f"{key.to_user_string()} last loaded {_when(ts)}" for key, ts in stale)
        context.log.info(f"Stale beyond {label}: {why}. Requesting one catch-up run.")
        run_key = episode_run_key(stale)
        request = dg.RunRequest(run_key=run_key, tags={"chat_agents/trigger": "freshness-catch-up"})
        if chat_agents_alerts.configured and context.cursor != run_key:
            alert = stale_alert(
                job_name,
                run_key,
                [(key, _when(ts)) for key, ts in stale],
                label,
                chat_agents_alerts,
            )
            try:
                context.log.info(
                    f"Stale alert sent to {', '.join(chat_agents_alerts.send(alert))}."
                )
            except AlertDeliveryError as error:
                context.log.error(str(error))
        return dg.SensorResult(run_requests=[request], cursor=run_key)

    return chat_agents_freshness_sensor
