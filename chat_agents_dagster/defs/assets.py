"""The five tables as one dlt multi-asset: one op, subsettable, one asset per table."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from chat_agents_dagster.defs.translator import ChatAgentsTranslator, qualified_table_name
from chat_agents_dagster.source import (
    FULL_REFRESH_VARIABLE,
    LoadReport,
    make_pipeline,
    run_load,
    source_for_definitions,
)

# One pool for every op that writes the pipeline's state and warehouse: two runs of it at once
# would race on both. dagster.yaml limits the pool to one run at a time.
POOL = "chat_agents_pipeline"


class LoadConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Drop the selected tables and load them again from scratch, ignoring what"
        f" earlier runs loaded (for recovery). {FULL_REFRESH_VARIABLE}=true does the same.",
    )


def build_chat_agents_assets(translator: ChatAgentsTranslator) -> dg.AssetsDefinition:
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
    )
    def chat_agents_load(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource, config: LoadConfig
    ) -> Iterator[dg.MaterializeResult]:
        # A fresh pipeline every run, and run_load builds a fresh source: dagster-dlt fails a
        # second run of one source object in the same process (dagster-io/dagster#34052), and
        # configuration may change between runs.
        pipeline = make_pipeline(progress=context.log)

        def through_dagster_dlt(
            pipeline: Any, source: Any, options: dict[str, Any]
        ) -> list[dg.MaterializeResult]:
            events = dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline, **options)
            return [event for event in events if isinstance(event, dg.MaterializeResult)]

        report: LoadReport[list[dg.MaterializeResult]] = run_load(
            pipeline,
            tables=[key.path[-1] for key in context.selected_asset_keys],
            full_refresh=config.full_refresh,
            runner=through_dagster_dlt,
            log=context.log,
        )
        yield from _materializations(report)

    return chat_agents_load


def _materializations(
    report: LoadReport[list[dg.MaterializeResult]],
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
                "dagster/table_name": qualified_table_name(table),
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
        )
