"""The one table every layer reads: endpoints, table names, primary keys and parent links.

The dlt source builds its resources from it, the Dagster translator derives lineage from it and the
asset checks derive their key checks from it, so adding an endpoint is one row here. This module
imports nothing from dlt or Dagster so that both layers can share it.
"""

from dataclasses import dataclass

SOURCE_NAME = "chat_agents_source"
PIPELINE_NAME = "chat_agents_pipeline"
DATASET_NAME = "chat_agents_data"
DEFAULT_BASE_URL = "https://api.mistral.ai/v1"
# Never named like the dataset (chat_agents_data.duckdb): DuckDB then cannot tell the catalog
# from the schema and the load fails.
DEFAULT_DUCKDB_FILE = "chat_agents.duckdb"

# The settings that can hold the API key, named in every error that is about the key.
API_KEY_SETTINGS = (
    "[sources.chat_agents_source] api_key in .dlt/secrets.toml",
    "the environment variable SOURCES__CHAT_AGENTS_SOURCE__API_KEY",
    "MISTRAL_API_KEY",
)

# Page-size bounds from Mistral's OpenAPI document. A version listing asks for the largest size, so
# that it costs as few requests as the API permits. The agents listing asks for 100: each page is
# held while its agents' children are fetched, and 1,000-agent pages held 16 MiB more at 3,000
# agents, for 27 fewer requests out of 24,000.
AGENTS_PAGE_SIZE_MAX = 1000
AGENTS_PAGE_SIZE = 100
VERSIONS_PAGE_SIZE_MAX = 100


@dataclass(frozen=True)
class Reference:
    """Every row's `columns` must match a row of `table` on `table_columns` (a foreign key)."""

    columns: tuple[str, ...]
    table: str
    table_columns: tuple[str, ...]


AGENT_REFERENCE = Reference(("agent_id",), "agents", ("id",))
VERSION_REFERENCE = Reference(("agent_id", "version"), "agent_versions", ("agent_id", "version"))


@dataclass(frozen=True)
class TableSpec:
    """One loaded table: where its rows come from, how they are keyed, what they must match.

    `one_row_per` names the set the table must cover exactly: "agent" (one row per row of
    `agents`) or "listed_version" (one row per entry of each agent's `versions` list).
    """

    name: str
    path: str
    primary_key: tuple[str, ...]
    parent: str | None
    description: str
    references: tuple[Reference, ...] = ()
    one_row_per: str | None = None


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        name="agents",
        path="agents/pages",
        primary_key=("id",),
        parent=None,
        description="One row per agent in the organisation, as the agent listing returns it.",
    ),
    TableSpec(
        name="agent_detail",
        path="agents/{agent_id}",
        primary_key=("id",),
        parent="agents",
        description="One row per agent: its active version in full, from GET /agents/{id}.",
        references=(Reference(("id",), "agents", ("id",)),),
        one_row_per="agent",
    ),
    TableSpec(
        name="agent_versions",
        path="agents/{agent_id}/versions",
        primary_key=("agent_id", "version"),
        parent="agents",
        description="One row per version of each agent: the snapshot the version listing returns.",
        references=(AGENT_REFERENCE,),
        one_row_per="listed_version",
    ),
    TableSpec(
        name="agent_aliases",
        path="agents/{agent_id}/aliases",
        primary_key=("agent_id", "alias"),
        parent="agents",
        description="One row per version alias of each agent, with the version it points at.",
        references=(AGENT_REFERENCE, VERSION_REFERENCE),
    ),
    TableSpec(
        name="agent_version_detail",
        path="agents/{agent_id}/versions/{version}",
        primary_key=("agent_id", "version"),
        parent="agent_versions",
        description="One row per version of each agent, from GET /agents/{id}/versions/{v}.",
        references=(AGENT_REFERENCE, VERSION_REFERENCE),
        one_row_per="listed_version",
    ),
)

TABLES_BY_NAME: dict[str, TableSpec] = {table.name: table for table in TABLES}
