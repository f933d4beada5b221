"""The five tables as one dlt multi-asset: one op, subsettable, one asset per table."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from chat_agents_dagster.settings import (
    AGENTS_PAGE_SIZE,
    DEFAULT_BASE_URL,
    VERSIONS_PAGE_SIZE_MAX,
)
from chat_agents_dagster.source import RunStats, after_load, chat_agents_source, make_pipeline
from chat_agents_dagster.source.lock import one_run_at_a_time
from chat_agents_dagster.source.pipeline import (
    FULL_REFRESH_VARIABLE,
    duckdb_memory_explained,
    full_refresh_requested,
    prepare_run,
    table_row_counts,
)
from chat_agents_dagster.translator import ChatAgentsTranslator, qualified_table_name

# One pool for every op that writes the pipeline's state and warehouse: two runs of it at once
# would race on both. dagster.yaml limits the pool to one run at a time.
POOL = "chat_agents_pipeline"


def _definition_source() -> Any:
    # Only its resources' names and hints are read at load time. Every argument is given so that
    # dlt resolves nothing, in particular no secret, while the code location loads; runs build a
    # fresh source from configuration (see the asset body).
    return chat_agents_source(
        api_key=None,
        base_url=DEFAULT_BASE_URL,
        agents_page_size=AGENTS_PAGE_SIZE,
        versions_page_size=VERSIONS_PAGE_SIZE_MAX,
    )


class LoadConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Drop the selected tables and load them again from scratch, ignoring what"
        f" earlier runs loaded (for recovery). {FULL_REFRESH_VARIABLE}=true does the same.",
    )


def build_chat_agents_assets(translator: ChatAgentsTranslator) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=_definition_source(),
        dlt_pipeline=make_pipeline(),
        name="chat_agents_load",
        dagster_dlt_translator=translator,
        pool=POOL,
    )
    def chat_agents_load(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource, config: LoadConfig
    ) -> Iterator[dg.MaterializeResult]:
        stats = RunStats()
        full_refresh = config.full_refresh or full_refresh_requested()
        if full_refresh:
            context.log.warning("Full refresh: the selected tables are dropped and reloaded.")
        # A fresh source and pipeline every run: dagster-dlt fails a second run of one source
        # object in the same process (dagster-io/dagster#34052), and configuration may change.
        pipeline = make_pipeline(progress=context.log)
        source = chat_agents_source(full_refresh=full_refresh, run_stats=stats)
        # The pool keeps queued runs apart; the lock also covers runs that bypass the queue
        # (`dagster job execute`) and `chat-agents-load` on the same machine.
        with one_run_at_a_time(pipeline), duckdb_memory_explained(pipeline):
            options = prepare_run(pipeline, source, full_refresh)
            results = list(
                dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline, **options)
            )
            tables = [result.asset_key.path[-1] for result in results if result.asset_key]
            after_load(pipeline, set(tables), stats)
            # Counted before the lock is released, for the run that may be waiting for it.
            counts = table_row_counts(pipeline, tables, live_only=False)
            live = table_row_counts(pipeline, tables)
        report = stats.as_dict()
        context.log.info(f"Mistral API answers and agents this run: {report}")
        for result, table in zip(results, tables, strict=True):
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
                    "dagster/row_count": dg.MetadataValue.int(counts[table]),
                    "live_rows": dg.MetadataValue.int(live[table]),
                    "api_rows": dg.MetadataValue.int(report["api_rows"].get(table, 0)),
                    "dagster/table_name": qualified_table_name(table),
                    "api_requests": dg.MetadataValue.int(report["total"]),
                    "api_requests_by_endpoint": dg.MetadataValue.json(report["by_endpoint"]),
                    "api_answers_by_status": dg.MetadataValue.json(report["by_status"]),
                    "api_retried": dg.MetadataValue.int(report["retried"]),
                    "api_rate_limited": dg.MetadataValue.int(report["rate_limited"]),
                    "agents_new": dg.MetadataValue.int(report["agents"]["new"]),
                    "agents_changed": dg.MetadataValue.int(report["agents"]["changed"]),
                    "agents_unchanged": dg.MetadataValue.int(report["agents"]["unchanged"]),
                    "agents_deleted": dg.MetadataValue.int(report["agents"]["deleted"]),
                },
            )

    return chat_agents_load
