"""How dlt resources become Dagster assets: keys, lineage, descriptions, kinds and policies.

dagster-dlt's default translator keys assets `dlt_<source>_<resource>`, gives each a phantom
upstream key and no parent-child edges, and reports the schema name as the table's name. This one
derives everything from the table list in tables.py, so a new table needs no change here.
"""

from dataclasses import dataclass

import dagster as dg
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from chat_agents_dagster.tables import DATASET_NAME, TABLES_BY_NAME

GROUP = "chat_agents"

# The API is the one true upstream: an external asset, observed but never materialized here.
MISTRAL_AGENTS_API = dg.AssetSpec(
    key=dg.AssetKey(["mistral", "agents_api"]),
    description="Mistral's Agents API (GET /v1/agents/...): where every table's rows come from.",
    group_name=GROUP,
    kinds={"api"},
)


def table_asset_key(table: str) -> dg.AssetKey:
    """`chat_agents_data/<table>`, mirroring where the table lives in the warehouse."""
    return dg.AssetKey([DATASET_NAME, table])


def qualified_table_name(table: str) -> str:
    return f"{DATASET_NAME}.{table}"


@dataclass
class ChatAgentsTranslator(DagsterDltTranslator):
    freshness_policy: dg.FreshnessPolicy | None = None

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        table = TABLES_BY_NAME[data.resource.name]
        upstream = table_asset_key(table.parent) if table.parent else MISTRAL_AGENTS_API.key
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
        )
