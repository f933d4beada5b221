"""The governance tables, derived in the warehouse from what the loads wrote: no API request.

1. Take the workspace's run lock (the load's: never while a load of it writes).
2. Read the workspace's aliases as the last load saw them and its alias history, and which
   versions have no change row yet (all of them, in a full refresh): warehouse.py.
3. Load the rows to write with dlt, merged on their primary keys, through a pipeline and schema
   of their own (`chat_agents_governance`) into the same dataset: the history's moves
   (alias_history.py), and the changes (version_changes.py), read and compared a batch of agents
   at a time while dlt extracts them. When there is nothing to write and the tables exist, no
   load at all.

Typed columns throughout, so the tables are the same on every destination and exist, empty,
from the first run.
"""

import copy
import logging
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract import DltSource

from chat_agents_dagster.source.governance.version_changes import KINDS, Row, plain
from chat_agents_dagster.source.governance.warehouse import (
    ALIASES,
    VERSIONS,
    GovernanceInputMissingError,
    Warehouse,
    change_rows,
    counts,
    delete_changes,
    history_rows,
    pairs_to_compare,
)
from chat_agents_dagster.source.lock import one_run_at_a_time, tables_created_one_at_a_time
from chat_agents_dagster.source.pipeline import make_pipeline
from chat_agents_dagster.source.run import full_refresh_requested
from chat_agents_dagster.tables import (
    ALIAS_HISTORY,
    DEFAULT_WORKSPACE,
    GOVERNANCE_PIPELINE_NAME,
    GOVERNANCE_SOURCE_NAME,
    GOVERNANCE_TABLES,
    GOVERNANCE_TABLES_BY_NAME,
    VERSION_CHANGES,
    WORKSPACE,
)

logger = logging.getLogger(__name__)

GOVERNANCE = tuple(table.name for table in GOVERNANCE_TABLES)


def _columns(key: tuple[str, ...], **types: str) -> dict[str, TColumnSchema]:
    """Typed hints for every column, so a table is the same on every destination and is
    created whole by its first run, with or without rows."""
    return {
        name: {"name": name, "data_type": data_type, "nullable": name not in key}  # type: ignore[typeddict-item]
        for name, data_type in types.items()
    }


HISTORY_COLUMNS = _columns(
    GOVERNANCE_TABLES_BY_NAME[ALIAS_HISTORY].primary_key,
    **{WORKSPACE: "text", "agent_id": "text", "alias": "text", "valid_from": "timestamp"},
    version="bigint",
    valid_to="timestamp",
    valid_from_source="text",
    valid_to_source="text",
    created_at="timestamp",
    updated_at="timestamp",
)
_JSON = (
    "tools_added",
    "tools_removed",
    "tools_redefined",
    "completion_args_changes",
    "guardrails_added",
    "guardrails_removed",
    "handoffs_added",
    "handoffs_removed",
    "metadata_changes",
    "other_fields",
)
CHANGES_COLUMNS = _columns(
    GOVERNANCE_TABLES_BY_NAME[VERSION_CHANGES].primary_key,
    **{WORKSPACE: "text", "agent_id": "text", "version": "bigint"},
    previous_version="bigint",
    changed_at="timestamp",
    version_message="text",
    kinds="text",
    **{f"{kind}_changed": "bool" for kind in KINDS},
    model_before="text",
    model_after="text",
    instructions_similarity="double",
    instructions_words_added="bigint",
    instructions_words_removed="bigint",
    instructions_chars_before="bigint",
    instructions_chars_after="bigint",
    description_before="text",
    description_after="text",
    **dict.fromkeys(_JSON, "json"),
)


@dataclass
class GovernanceReport:
    """What a run derived: rows written, and the workspace's rows after, by table."""

    tables: tuple[str, ...]
    full_refresh: bool
    written: dict[str, int]
    rows: dict[str, int]
    open_intervals: int


def _rows_or_table(batches: Iterable[list[Row]], count: int) -> Iterator[Any]:
    if not count:
        # Creates the table with its columns although no row is written (checks read it).
        yield dlt.mark.materialize_table_schema()
        return
    for batch in batches:
        yield [{k: plain_json(k, v) for k, v in row.items()} for row in batch]


def governance_source(
    rows: dict[str, tuple[Iterable[list[Row]], int]], duckdb: bool = False
) -> DltSource:
    """The governance tables in `rows` (name -> batches of rows to merge, and how many rows),
    with their typed columns."""
    columns = {ALIAS_HISTORY: HISTORY_COLUMNS, VERSION_CHANGES: CHANGES_COLUMNS}

    @dlt.source(name=GOVERNANCE_SOURCE_NAME, max_table_nesting=0)
    def chat_agents_governance() -> Iterator[Any]:
        for name, (batches, count) in rows.items():
            spec = GOVERNANCE_TABLES_BY_NAME[name]
            yield dlt.resource(
                _rows_or_table(batches, count),
                name=name,
                # As the load does on DuckDB: JSON lines, not INSERT statements, which DuckDB
                # parses at several times the memory (benchmarks/README.md). An empty JSON lines
                # file fails to load there.
                file_format="jsonl" if duckdb and count else "preferred",
                write_disposition="merge",
                primary_key=list(spec.primary_key),
                # A copy: dlt fills in and keeps the dicts it is given.
                columns=copy.deepcopy(columns[name]),
            )

    return chat_agents_governance()


def plain_json(name: str, value: Any) -> Any:
    """JSON columns hold plain JSON (no datetime, no Decimal) on every destination."""
    return plain(value) if name in _JSON else value


def run_governance(
    workspace: str = DEFAULT_WORKSPACE,
    *,
    tables: Collection[str] = GOVERNANCE,
    full_refresh: bool = False,
    holder: str = "chat-agents-load",
    log: logging.Logger = logger,
    alone: bool = True,
) -> GovernanceReport:
    """Derives `tables` (both governance tables by default) for `workspace`; see the module
    docstring. A full refresh (`full_refresh`, or CHAT_AGENTS_FULL_REFRESH) compares every
    version again; the alias history is never rebuilt, as the API cannot give it back."""
    selected = tuple(name for name in GOVERNANCE if name in set(tables))
    full_refresh = full_refresh_requested(full_refresh)
    pipeline = make_pipeline(workspace=workspace, name=GOVERNANCE_PIPELINE_NAME)
    with one_run_at_a_time(make_pipeline(workspace=workspace), holder):
        with pipeline.sql_client() as client:
            warehouse = Warehouse(client, workspace)
            reads = {ALIAS_HISTORY: ("agents", ALIASES), VERSION_CHANGES: (VERSIONS,)}
            missing = [
                table
                for table in sorted({table for name in selected for table in reads[name]})
                if not warehouse.exists(table)
            ]
            if missing:
                raise GovernanceInputMissingError(
                    f"No table {', '.join(missing)} in the warehouse: the governance tables are"
                    " derived from the loaded ones; run chat_agents_job (or chat-agents-load) to"
                    " load them first."
                )
            exists = {name: warehouse.exists(name) for name in selected}
            rows: dict[str, tuple[Iterable[list[Row]], int]] = {}
            if ALIAS_HISTORY in selected:
                history = history_rows(warehouse, exists[ALIAS_HISTORY])
                rows[ALIAS_HISTORY] = [history], len(history)
            if VERSION_CHANGES in selected:
                needed, stale = pairs_to_compare(warehouse, exists[VERSION_CHANGES], full_refresh)
                delete_changes(warehouse, stale)
                # Read and compared while dlt extracts them, a batch at a time.
                rows[VERSION_CHANGES] = change_rows(pipeline, workspace, needed), len(needed)
        written = {name: count for name, (_, count) in rows.items()}
        to_load = {name: rows[name] for name in selected if written[name] or not exists[name]}
        if to_load:
            creating = not alone and not all(exists.values())
            with tables_created_one_at_a_time(pipeline, creating, holder):
                # Local state goes first (a killed run's package with it), as in the load.
                pipeline.drop()
                duckdb = pipeline.destination.destination_name == "duckdb"
                pipeline.run(governance_source(to_load, duckdb))
        found, open_intervals = counts(pipeline, selected, workspace)
    log.info(
        "Governance tables of workspace %r: %s",
        workspace,
        ", ".join(f"{name} {written[name]} rows written" for name in selected),
    )
    return GovernanceReport(selected, full_refresh, written, found, open_intervals)
