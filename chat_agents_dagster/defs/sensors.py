"""A sensor that notices stale tables (the nightly run missed or failed) and asks for one
catch-up run per stale episode (per workspace, when the assets are partitioned by workspace).

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
    instance: dg.DagsterInstance,
    keys: Sequence[dg.AssetKey],
    window: timedelta,
    now: float,
    partition: str | None = None,
) -> tuple[list[tuple[dg.AssetKey, float]], list[dg.AssetKey]]:
    """(stale assets with their last materialization time, assets never materialized), of one
    partition when given."""
    stale: list[tuple[dg.AssetKey, float]] = []
    never: list[dg.AssetKey] = []
    for key in keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        if not records:
            never.append(key)
        elif now - records[0].timestamp > window.total_seconds():
            stale.append((key, records[0].timestamp))
    return stale, never


def episode_run_key(
    stale: Sequence[tuple[dg.AssetKey, float]], partition: str | None = None
) -> str:
    episode = ";".join(f"{key.to_user_string()}@{ts:.6f}" for key, ts in sorted(stale))
    digest = hashlib.sha256(episode.encode()).hexdigest()[:16]
    return (
        f"freshness-catch-up-{partition}-{digest}" if partition else f"freshness-catch-up-{digest}"
    )


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
    # Each workspace's tables are judged apart: its catch-up run loads that workspace alone.
    partitions: list[str | None] = list(settings.workspaces) if settings.partitioned else [None]

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
        now, alerted = clock(), set(filter(None, (context.cursor or "").split(",")))
        requests, skipped = [], []
        for partition in partitions:
            of = f" of workspace {partition}" if partition else ""
            stale, never = stale_assets(context.instance, keys, window, now, partition)
            if never:
                context.log.info(
                    f"Never materialized{of}, left to the schedule: "
                    + ", ".join(key.to_user_string() for key in never)
                )
            if not stale:
                skipped.append(
                    f"No table{of} is materialized yet; the nightly schedule loads them."
                    if len(never) == len(keys)
                    else f"Every materialized table{of} is within its {label} window."
                )
                continue
            why = ", ".join(f"{key.to_user_string()} last loaded {_when(ts)}" for key, ts in stale)
            context.log.info(f"Stale beyond {label}{of}: {why}. Requesting one catch-up run.")
            run_key = episode_run_key(stale, partition)
            requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=partition,
                    tags={"chat_agents/trigger": "freshness-catch-up"},
                )
            )
            if chat_agents_alerts.configured and run_key not in alerted:
                alert = stale_alert(
                    job_name,
                    run_key,
                    [(key, _when(ts)) for key, ts in stale],
                    label,
                    chat_agents_alerts,
                    partition,
                )
                try:
                    context.log.info(
                        f"Stale alert sent to {', '.join(chat_agents_alerts.send(alert))}."
                    )
                except AlertDeliveryError as error:
                    context.log.error(str(error))
        if not requests:
            return dg.SkipReason(" ".join(skipped))
        # The episodes alerted on: each alerts once, however often the sensor ticks.
        return dg.SensorResult(
            run_requests=requests, cursor=",".join(sorted(r.run_key or "" for r in requests))
        )

    return chat_agents_freshness_sensor
