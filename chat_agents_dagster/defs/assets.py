"""The five tables as one dlt multi-asset: one op, subsettable, one asset per table."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from chat_agents_dagster.defs.deployment import (
    OUTAGE_RETRIES,
    OUTAGE_RETRY_DELAY,
    DeploymentSettings,
)
from chat_agents_dagster.defs.translator import (
    MISTRAL_AGENTS_API_KEY,
    ChatAgentsTranslator,
    qualified_table_name,
)
from chat_agents_dagster.source import (
    FULL_REFRESH_VARIABLE,
    LoadReport,
    RunStats,
    api_outage,
    make_pipeline,
    run_load,
    source_for_definitions,
)
from chat_agents_dagster.tables import DEFAULT_WORKSPACE

# One pool for every op that writes the pipeline's state and warehouse: two runs of it at once
# would race on both. dagster.yaml limits the pool to one run at a time.
POOL = "chat_agents_pipeline"

# The tag Dagster reads an observation's data version from (DATA_VERSION_TAG in
# dagster._core.definitions.data_version; dagster exports no name for it).
DATA_VERSION_TAG = "dagster/data_version"


class LoadConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Drop the selected tables and load them again from scratch, ignoring what"
        f" earlier runs loaded (for recovery). {FULL_REFRESH_VARIABLE}=true does the same.",
    )


def workspace_partitions(settings: DeploymentSettings) -> dg.StaticPartitionsDefinition | None:
    """One partition per workspace, when more than the default one is configured. Dagster's
    answer for a dlt source with several tenants: a run loads one partition, through that
    workspace's own pipeline."""
    if not settings.partitioned:
        return None
    return dg.StaticPartitionsDefinition(list(settings.workspaces))


def run_workspace(context: dg.AssetExecutionContext) -> str:
    """The workspace a run loads: its partition, else the default one."""
    return context.partition_key if context.has_partition_key else DEFAULT_WORKSPACE


def build_chat_agents_assets(
    translator: ChatAgentsTranslator, settings: DeploymentSettings
) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=source_for_definitions(),
        # No pipeline while the code location loads: building one resolves dlt's configuration
        # (the destination, its credentials, the working directory), which belongs to runs. Every
        # run passes its own to dagster-dlt, which then never reads this one, and dagster-dlt's
        # translator takes a missing pipeline as "no destination" (kind `dlt` only).
        dlt_pipeline=None,  # type: ignore[arg-type]
        name="chat_agents_load",
        dagster_dlt_translator=translator,
        pool=POOL,
        partitions_def=workspace_partitions(settings),
    )
    def chat_agents_load(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource, config: LoadConfig
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        # A fresh pipeline every run, and run_load builds a fresh source: dagster-dlt fails a
        # second run of one source object in the same process (dagster-io/dagster#34052), and
        # configuration may change between runs.
        workspace = run_workspace(context)
        pipeline = make_pipeline(progress=context.log, workspace=workspace)
        stats = RunStats()

        def through_dagster_dlt(
            pipeline: Any, source: Any, options: dict[str, Any]
        ) -> list[dg.MaterializeResult]:
            events = dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline, **options)
            return [event for event in events if isinstance(event, dg.MaterializeResult)]

        try:
            report: LoadReport[list[dg.MaterializeResult]] = run_load(
                pipeline,
                tables=[key.path[-1] for key in context.selected_asset_keys],
                full_refresh=config.full_refresh,
                runner=through_dagster_dlt,
                log=context.log,
                stats=stats,
                holder=f"Dagster run {context.run.run_id} (load)",
                workspace=workspace,
                alone=len(settings.workspaces) == 1,
            )
        except Exception as error:
            # What the API answered is worth seeing most when the run failed (an outage's 503s).
            yield _observation(stats, workspace, settings)
            outage = api_outage(error)
            if outage is None or settings.outage_retries == 0:
                raise
            if context.retry_number < settings.outage_retries:
                context.log.warning(
                    f"The Mistral API is down ({outage}). The load runs again in"
                    f" {settings.outage_retry_delay.total_seconds():g} s, try"
                    f" {context.retry_number + 2} of {settings.outage_retries + 1}"
                    f" ({OUTAGE_RETRIES}, {OUTAGE_RETRY_DELAY})."
                )
            # Past the last retry Dagster fails the step with this error as the cause.
            raise dg.RetryRequested(
                max_retries=settings.outage_retries,
                seconds_to_wait=settings.outage_retry_delay.total_seconds(),
            ) from error
        yield _observation(stats, workspace, settings)
        yield from _materializations(report, workspace)

    return chat_agents_load


def _observation(
    stats: RunStats, workspace: str, settings: DeploymentSettings
) -> dg.AssetObservation:
    """The run-wide figures, once, on the API asset; its data version is the listing's digest,
    so it moves exactly when an agent is added, changed or removed (none when the listing did not
    complete)."""
    api = stats.as_dict()
    digest = stats.listing_digest()
    return dg.AssetObservation(
        asset_key=MISTRAL_AGENTS_API_KEY,
        metadata={
            "agents_listed": dg.MetadataValue.int(api["agents_listed"]),
            "listing_complete": dg.MetadataValue.bool(digest is not None),
            "api_requests": dg.MetadataValue.int(api["total"]),
            "api_requests_by_endpoint": dg.MetadataValue.json(api["by_endpoint"]),
            "api_answers_by_status": dg.MetadataValue.json(api["by_status"]),
            "api_retried": dg.MetadataValue.int(api["retried"]),
            "api_rate_limited": dg.MetadataValue.int(api["rate_limited"]),
            "agents_new": dg.MetadataValue.int(api["agents"]["new"]),
            "agents_changed": dg.MetadataValue.int(api["agents"]["changed"]),
            "agents_unchanged": dg.MetadataValue.int(api["agents"]["unchanged"]),
            "agents_deleted": dg.MetadataValue.int(api["agents"]["deleted"]),
        },
        tags={DATA_VERSION_TAG: digest} if digest is not None else None,
        partition=workspace if settings.partitioned else None,
    )


def _materializations(
    report: LoadReport[list[dg.MaterializeResult]], workspace: str
) -> Iterator[dg.MaterializeResult]:
    api = report.stats.as_dict()
    for result in report.result:
        table = result.asset_key.path[-1] if result.asset_key else ""
        # dagster-dlt omits rows_loaded for a table that loaded nothing and names the table
        # after the schema, not the dataset; both are set right here.
        metadata = dict(result.metadata or {})
        loaded = metadata.get("rows_loaded")
        if isinstance(loaded, dg.IntMetadataValue):
            loaded = loaded.value
        yield dg.MaterializeResult(
            asset_key=result.asset_key,
            metadata={
                **metadata,
                "rows_loaded": dg.MetadataValue.int(loaded if isinstance(loaded, int) else 0),
                "dagster/row_count": dg.MetadataValue.int(report.rows[table]),
                "live_rows": dg.MetadataValue.int(report.live_rows[table]),
                "api_rows": dg.MetadataValue.int(api["api_rows"].get(table, 0)),
                "agents_gone_mid_run": dg.MetadataValue.json(api["gone_mid_run"].get(table, [])),
                "full_refresh": dg.MetadataValue.bool(report.full_refresh),
                "workspace": dg.MetadataValue.text(workspace),
                "dagster/table_name": qualified_table_name(table),
            },
        )
