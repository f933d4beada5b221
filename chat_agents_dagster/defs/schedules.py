"""The job that loads all five tables, derives the governance tables from them, runs every
check, and its nightly schedule."""

from typing import TYPE_CHECKING

import dagster as dg

from chat_agents_dagster.defs.deployment import (
    NIGHTLY_CRON,
    DeploymentSettingError,
    DeploymentSettings,
)
from chat_agents_dagster.defs.translator import table_asset_key
from chat_agents_dagster.tables import GOVERNANCE_TABLES, TABLES

if TYPE_CHECKING:
    # What define_asset_job returns; dagster does not export the name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

TABLE_ASSETS = dg.AssetSelection.assets(
    *(table_asset_key(table.name) for table in (*TABLES, *GOVERNANCE_TABLES))
)

JOB_NAME = "chat_agents_job"
SCHEDULE_NAME = "chat_agents_nightly"


def build_chat_agents_job(settings: DeploymentSettings) -> "UnresolvedAssetJobDefinition":
    tags = {"chat_agents/job": "load"}
    if settings.max_runtime is not None:
        # Run monitoring ends a run of this job that runs longer (dagster.yaml enables it); the
        # instance's own max_runtime_seconds covers the asset jobs the UI builds.
        tags["dagster/max_runtime"] = str(int(settings.max_runtime.total_seconds()))
    return dg.define_asset_job(
        name=JOB_NAME,
        selection=TABLE_ASSETS,
        description="Load every agent, detail, version, version detail and alias; derive the alias"
        " history and the changes between versions; run every check.",
        tags=tags,
    )


def build_nightly_schedule(
    settings: DeploymentSettings, job: "UnresolvedAssetJobDefinition"
) -> dg.ScheduleDefinition:
    """Runs the job on `settings.nightly_cron` in `settings.timezone`: one run, or one run per
    workspace when the assets are partitioned by workspace (each its own run, so one
    workspace's failure is its alone). RUNNING by default, so a deployment with a daemon needs no
    manual toggle; CHAT_AGENTS_NIGHTLY_ENABLED=false ships it stopped (a toggle in the UI still
    overrides either)."""
    status = dg.DefaultScheduleStatus.RUNNING
    if not settings.nightly_enabled:
        status = dg.DefaultScheduleStatus.STOPPED
    workspaces = settings.workspaces
    description = f"Nightly load, {settings.nightly_cron} ({settings.timezone})."
    try:
        if not settings.partitioned:
            return dg.ScheduleDefinition(
                name=SCHEDULE_NAME,
                job=job,
                cron_schedule=settings.nightly_cron,
                execution_timezone=settings.timezone,
                default_status=status,
                description=description,
            )

        @dg.schedule(
            name=SCHEDULE_NAME,
            job=job,
            cron_schedule=settings.nightly_cron,
            execution_timezone=settings.timezone,
            default_status=status,
            description=f"{description} One run per workspace: {', '.join(workspaces)}.",
        )
        def chat_agents_nightly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
            night = context.scheduled_execution_time.isoformat()
            return [
                dg.RunRequest(run_key=f"{workspace}-{night}", partition_key=workspace)
                for workspace in workspaces
            ]

        return chat_agents_nightly
    except dg.DagsterInvalidDefinitionError as error:
        raise DeploymentSettingError(
            f"{NIGHTLY_CRON}={settings.nightly_cron!r} is not a cron schedule"
            f" (e.g. '0 2 * * *' for 02:00 every day): {error}"
        ) from None
