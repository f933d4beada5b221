"""The tables, as both layers know them: names, primary keys, parent links and references.

The five loaded tables (`TABLES`) come from the API; the two governance tables
(`GOVERNANCE_TABLES`) are derived from them in the warehouse, without a request.

The dlt source takes its resources' names and primary keys from here, the Dagster translator its
lineage and the asset checks their key, reference and coverage checks; none of those names a
table of its own. A new table takes a row here and, in the source, the resource that fetches and
shapes it (source/resources.py) and its part of what the warehouse holds (source/record.py).
Imports nothing from dlt or Dagster so that both layers can share it.
"""

from dataclasses import dataclass

SOURCE_NAME = "chat_agents_source"
PIPELINE_NAME = "chat_agents_pipeline"
# The governance tables load through pipelines and a schema of their own, into the same dataset:
# a full refresh of the five tables (dlt's `drop_resources`) drops only its own schema's tables,
# and the alias history, which the API cannot give back, is never among them.
GOVERNANCE_SOURCE_NAME = "chat_agents_governance"
GOVERNANCE_PIPELINE_NAME = "chat_agents_governance"
DATASET_NAME = "chat_agents_data"
# Every row says which Mistral workspace it came from, and the workspace leads every key and
# reference: the tables hold every workspace, and a query across them is one query. The
# workspace a single key loads, unless configured otherwise.
WORKSPACE = "workspace"
DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class Reference:
    """Every row's `columns` must match a row of `table` on `table_columns` (a foreign key)."""

    columns: tuple[str, ...]
    table: str
    table_columns: tuple[str, ...]


AGENT_REFERENCE = Reference((WORKSPACE, "agent_id"), "agents", (WORKSPACE, "id"))
VERSION_REFERENCE = Reference(
    (WORKSPACE, "agent_id", "version"), "agent_versions", (WORKSPACE, "agent_id", "version")
)


@dataclass(frozen=True)
class TableSpec:
    """One loaded table: how its rows are keyed, what it hangs under, what its rows must match.

    `one_row_per` names the set the table must cover exactly: "agent" (one row per row of
    `agents`) or "listed_version" (one row per entry of each agent's `versions` list).
    """

    name: str
    primary_key: tuple[str, ...]
    parent: str | None
    description: str
    references: tuple[Reference, ...] = ()
    one_row_per: str | None = None


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        name="agents",
        primary_key=(WORKSPACE, "id"),
        parent=None,
        description="One row per agent in the organisation, as the agent listing returns it.",
    ),
    TableSpec(
        name="agent_detail",
        primary_key=(WORKSPACE, "id"),
        parent="agents",
        description="One row per agent: its active version in full, from GET /agents/{id}.",
        references=(Reference((WORKSPACE, "id"), "agents", (WORKSPACE, "id")),),
        one_row_per="agent",
    ),
    TableSpec(
        name="agent_versions",
        primary_key=(WORKSPACE, "agent_id", "version"),
        parent="agents",
        description="One row per version of each agent: the snapshot the version listing returns.",
        references=(AGENT_REFERENCE,),
        one_row_per="listed_version",
    ),
    TableSpec(
        name="agent_aliases",
        primary_key=(WORKSPACE, "agent_id", "alias"),
        parent="agents",
        description="One row per version alias of each agent, with the version it points at.",
        references=(AGENT_REFERENCE, VERSION_REFERENCE),
    ),
    TableSpec(
        name="agent_version_detail",
        primary_key=(WORKSPACE, "agent_id", "version"),
        parent="agent_versions",
        description="One row per version of each agent, from GET /agents/{id}/versions/{v}.",
        references=(AGENT_REFERENCE, VERSION_REFERENCE),
        one_row_per="listed_version",
    ),
)

TABLES_BY_NAME: dict[str, TableSpec] = {table.name: table for table in TABLES}

ALIAS_HISTORY = "agent_alias_history"
VERSION_CHANGES = "agent_version_changes"

GOVERNANCE_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        name=ALIAS_HISTORY,
        primary_key=(WORKSPACE, "agent_id", "alias", "valid_from"),
        parent="agent_aliases",
        description="Every version each alias has pointed at, with the interval it held"
        " (valid_from, valid_to; valid_to null while current), dated by the API's updated_at"
        " where it tells and by the run that saw the move where it does not.",
    ),
    TableSpec(
        name=VERSION_CHANGES,
        primary_key=(WORKSPACE, "agent_id", "version"),
        parent="agent_versions",
        description="One row per agent and consecutive pair of versions: what changed from"
        " previous_version to version in model, instructions, description, tools, completion"
        " arguments, guardrails, handoffs and metadata.",
    ),
)

GOVERNANCE_TABLES_BY_NAME: dict[str, TableSpec] = {table.name: table for table in GOVERNANCE_TABLES}
