"""How dlt resources become Dagster assets: keys, lineage, descriptions, kinds and policies.

dagster-dlt's default translator keys assets `dlt_<source>_<resource>`, gives each a phantom
upstream key and no parent-child edges, and reports the schema name as the table's name. This one
derives everything from the table list in tables.py, so a new table needs no change here.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from chat_agents_dagster.source import table_code_versions
from chat_agents_dagster.tables import DATASET_NAME, TABLES_BY_NAME

GROUP = "chat_agents"

MISTRAL_AGENTS_API_KEY = dg.AssetKey(["mistral", "agents_api"])


def mistral_agents_api(
    owners: Sequence[str] = (), partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetSpec:
    """The API is the one true upstream: an external asset, never materialized here, observed by
    every load (assets.py): what was listed and how the API answered; by workspace, when the
    tables are."""
    return dg.AssetSpec(
        key=MISTRAL_AGENTS_API_KEY,
        description="Mistral's Agents API (GET /v1/agents/...): where every table's rows come"
        " from. Each load observes it: agents listed, requests, answers by status, and a data"
        " version that changes when the listing does.",
        group_name=GROUP,
        kinds={"api"},
        owners=list(owners),
        partitions_def=partitions_def,
    )


def table_asset_key(table: str) -> dg.AssetKey:
    """`chat_agents_data/<table>`, mirroring where the table lives in the warehouse."""
    return dg.AssetKey([DATASET_NAME, table])


def qualified_table_name(table: str) -> str:
    return f"{DATASET_NAME}.{table}"


@dataclass
class ChatAgentsTranslator(DagsterDltTranslator):
    freshness_policy: dg.FreshnessPolicy | None = None
    owners: Sequence[str] = field(default_factory=tuple)

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        table = TABLES_BY_NAME[data.resource.name]
        upstream = table_asset_key(table.parent) if table.parent else MISTRAL_AGENTS_API_KEY
        return spec.replace_attributes(
            key=table_asset_key(table.name),
            deps=[upstream],
            description=table.description,
            group_name=GROUP,
            # The destination is a run's to resolve, not the code location's (assets.py): each
            # materialization names it (dagster-dlt's `destination_name`, `dagster/storage_kind`).
            kinds={"dlt"},
            tags={"chat_agents/table": table.name, "chat_agents/source": "mistral"},
            metadata={
                **spec.metadata,
                "dagster/table_name": qualified_table_name(table.name),
                "chat_agents/primary_key": ", ".join(table.primary_key),
            },
            freshness_policy=self.freshness_policy,
            owners=list(self.owners),
            # Changes when the code that loads this table does (source/versions.py), so the UI
            # shows which tables a deployment's new code has not loaded yet.
            code_version=table_code_versions()[table.name],
        )
