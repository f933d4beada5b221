"""The governance tables, derived in the warehouse from what the loads wrote: no API request.

1. Take the workspace's run lock (the load's: never while a load of it writes).
2. Read the workspace's aliases as the last load saw them, and its alias history; the versions
   that have no change row yet (all of them, in a full refresh) and the versions before them.
3. Compute the rows to write (alias_history.py, version_changes.py).
4. Load them with dlt, merged on their primary keys, through a pipeline and schema of their own
   (`chat_agents_governance`) into the same dataset; when there is nothing to write and the
   tables exist, no load at all.

Typed columns throughout, so the tables are the same on every destination and exist, empty,
from the first run.
"""

import copy
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase
from dlt.extract import DltSource

from chat_agents_dagster.source.governance.alias_history import (
    AliasKey,
    Interval,
    LiveAlias,
    moved_on,
)
from chat_agents_dagster.source.governance.version_changes import (
    KINDS,
    Row,
    assemble,
    compare,
    plain,
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
    SOURCE_NAME,
    VERSION_CHANGES,
    WORKSPACE,
)

logger = logging.getLogger(__name__)

GOVERNANCE = tuple(table.name for table in GOVERNANCE_TABLES)
VERSIONS = "agent_versions"
ALIASES = "agent_aliases"


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


class GovernanceInputMissingError(RuntimeError):
    """A table the governance tables are derived from was never loaded."""


@dataclass
class GovernanceReport:
    """What a run derived: rows written, and the workspace's rows after, by table."""

    tables: tuple[str, ...]
    full_refresh: bool
    written: dict[str, int]
    rows: dict[str, int]
    open_intervals: int
    loaded: bool


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Warehouse:
    """One workspace's rows, read through dlt's SQL client."""

    def __init__(self, client: SqlClientBase[Any], workspace: str) -> None:
        self.client = client
        self.workspace = workspace
        self.q = client.make_qualified_table_name
        self.c = client.escape_column_name
        # Workspace names are checked to be [a-z0-9_] (configuration.py): a safe literal.
        self.mine = f"{self.c(WORKSPACE)} = '{workspace}'"

    def exists(self, table: str) -> bool:
        try:
            self.client.execute_sql(f"SELECT 1 FROM {self.q(table)} WHERE 1 = 0")
        except DatabaseUndefinedRelation:
            return False
        return True

    def dicts(self, sql: str, json_columns: Collection[str] = ()) -> list[Row]:
        with self.client.execute_query(sql) as cursor:
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        found = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            for name in json_columns:
                if isinstance(values.get(name), str):
                    values[name] = json.loads(values[name])
            found.append(values)
        return found

    def count(self, table: str, where: str = "") -> int:
        rows = self.client.execute_sql(
            f"SELECT COUNT(*) FROM {self.q(table)} WHERE {self.mine}{where}"
        )
        return int(rows[0][0]) if rows else 0

    def select(self, table: str, columns: str = "*", where: str = "") -> list[Row]:
        return self.dicts(
            f"SELECT {columns} FROM {self.q(table)} WHERE {self.mine}{where}",
        )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _observed_at(warehouse: _Warehouse) -> datetime | None:
    """When the last load of the workspace ended (dlt's `_dlt_loads`): every load re-sends
    every listed agent and its aliases, so the newest load among their rows is it."""
    load, c = warehouse.c("_dlt_load_id"), warehouse.c
    loaded = " UNION ".join(
        f"SELECT {load} FROM {warehouse.q(table)} WHERE {warehouse.mine}"
        for table in ("agents", ALIASES)
    )
    rows = warehouse.client.execute_sql(
        f"SELECT MAX({c('inserted_at')}) FROM {warehouse.q('_dlt_loads')}"
        f" WHERE {c('load_id')} IN ({loaded})"
    )
    return _utc(rows[0][0]) if rows else None


def _history_rows(warehouse: _Warehouse, exists: bool) -> list[Row]:
    live: dict[AliasKey, LiveAlias] = {}
    tombstones: dict[AliasKey, datetime | None] = {}
    for row in warehouse.select(ALIASES):
        key = (row["agent_id"], row["alias"])
        if row.get("deleted_at") is None:
            live[key] = LiveAlias(
                int(row["version"]), _utc(row["created_at"]), _utc(row["updated_at"])
            )
        else:
            tombstones[key] = _utc(row["deleted_at"])
    # A load that found every agent deleted re-sent no row, but dated the tombstones.
    instants = [_observed_at(warehouse), *tombstones.values()]
    observed_at = max((instant for instant in instants if instant is not None), default=None)
    if observed_at is None:
        return []
    history = [
        Interval(
            agent_id=row["agent_id"],
            alias=row["alias"],
            version=int(row["version"]),
            valid_from=_utc(row["valid_from"]),  # type: ignore[arg-type]
            valid_to=_utc(row["valid_to"]),
            valid_from_source=row["valid_from_source"],
            valid_to_source=row["valid_to_source"],
            created_at=_utc(row["created_at"]),
            updated_at=_utc(row["updated_at"]),
        )
        for row in (warehouse.select(ALIAS_HISTORY) if exists else [])
    ]
    return [
        {WORKSPACE: warehouse.workspace, **asdict(interval)}
        for interval in moved_on(history, live, tombstones, observed_at)
    ]


def _stored_source_schema(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The load's schema as the destination keeps it: which tables nest under `agent_versions`
    and which of their columns hold JSON."""
    with pipeline.destination_client() as job_client:
        stored = job_client.get_stored_schema(SOURCE_NAME)  # type: ignore[attr-defined]
    if stored is None:
        raise GovernanceInputMissingError(
            f"The warehouse holds no {SOURCE_NAME} schema: run chat_agents_job (or"
            " chat-agents-load) to load the agents first."
        )
    tables: dict[str, Any] = json.loads(stored.schema)["tables"]
    return tables


def _json_columns(table: dict[str, Any]) -> set[str]:
    return {
        name
        for name, column in table.get("columns", {}).items()
        if column.get("data_type") == "json"
    }


def _versions_of(
    warehouse: _Warehouse, schema: dict[str, Any], agents: Collection[str] | None
) -> dict[tuple[str, int], Row]:
    """Every version of `agents` (all the workspace's when None), assembled, by (agent, version)."""
    c = warehouse.c

    def of_agents(alias: str) -> str:
        if agents is None:
            return ""
        listed = ", ".join(_literal(agent_id) for agent_id in sorted(agents))
        return f" AND {alias}{c('agent_id')} IN ({listed})"

    roots = warehouse.dicts(
        f"SELECT * FROM {warehouse.q(VERSIONS)} WHERE {warehouse.mine}{of_agents('')}",
        _json_columns(schema[VERSIONS]),
    )
    nested: dict[str, list[Row]] = {}
    prefix = f"{VERSIONS}__"
    for name, table in schema.items():
        if not name.startswith(prefix) or not warehouse.exists(name):
            continue
        nested[name.removeprefix(prefix)] = warehouse.dicts(
            f"SELECT n.* FROM {warehouse.q(name)} n JOIN {warehouse.q(VERSIONS)} r"
            f" ON n.{c('_dlt_root_id')} = r.{c('_dlt_id')}"
            f" WHERE r.{warehouse.mine}{of_agents('r.')}",
            _json_columns(table),
        )
    assembled = assemble(roots, nested)
    return {(row["agent_id"], int(row["version"])): row for row in assembled.values()}


def _change_rows(
    warehouse: _Warehouse, pipeline: dlt.Pipeline, exists: bool, full_refresh: bool
) -> tuple[list[Row], list[tuple[str, int]]]:
    """(rows to write, keys of rows to delete): a row for each consecutive pair of versions with
    none yet, or one comparing other versions (every pair, in a full refresh); rows whose version
    is gone from an agent still loaded are deleted. Rows of agents no longer loaded (a full
    refresh of the load forgets agents deleted before it) are kept: like the alias history, the
    API cannot give them back."""
    c = warehouse.c
    pairs = {
        (str(agent_id), int(version)): None if previous is None else int(previous)
        for agent_id, version, previous in warehouse.client.execute_sql(
            f"SELECT {c('agent_id')}, {c('version')}, LAG({c('version')}) OVER (PARTITION BY"
            f" {c('agent_id')} ORDER BY {c('version')}) FROM {warehouse.q(VERSIONS)}"
            f" WHERE {warehouse.mine}"
        )
        or []
    }
    existing: dict[tuple[str, int], int | None] = {}
    if exists:
        existing = {
            (str(row["agent_id"]), int(row["version"])): row["previous_version"]
            for row in warehouse.select(VERSION_CHANGES, "agent_id, version, previous_version")
        }
    needed = {
        key: previous
        for key, previous in pairs.items()
        if previous is not None and (full_refresh or existing.get(key, -1) != previous)
    }
    loaded = {agent_id for agent_id, _ in pairs}
    stale = sorted(key for key in existing if key[0] in loaded and pairs.get(key) is None)
    if not needed:
        return [], stale
    agents = {agent_id for agent_id, _ in needed}
    # A first derivation compares every version: reading the workspace whole is one query.
    versions = _versions_of(
        warehouse, _stored_source_schema(pipeline), None if len(agents) > 500 else agents
    )
    rows = []
    for (agent_id, version), previous in sorted(needed.items()):
        before, after = versions[(agent_id, previous)], versions[(agent_id, version)]
        rows.append(
            {
                WORKSPACE: warehouse.workspace,
                "agent_id": agent_id,
                "version": version,
                **compare(before, after),
            }
        )
    return rows, stale


def _delete(warehouse: _Warehouse, keys: list[tuple[str, int]]) -> None:
    if not keys:
        return
    table, c = warehouse.q(VERSION_CHANGES), warehouse.c
    with warehouse.client.begin_transaction():
        for agent_id, version in keys:
            warehouse.client.execute_sql(
                f"DELETE FROM {table} WHERE {warehouse.mine} AND {c('agent_id')} ="
                f" {_literal(agent_id)} AND {c('version')} = {int(version)}"
            )


def _rows_or_table(rows: list[Row]) -> Iterator[Any]:
    if rows:
        yield rows
    else:
        # Creates the table with its columns although no row is written (checks read it).
        yield dlt.mark.materialize_table_schema()


def governance_source(rows: dict[str, list[Row]]) -> DltSource:
    """The governance tables in `rows` (name -> rows to merge), with their typed columns."""
    columns = {ALIAS_HISTORY: HISTORY_COLUMNS, VERSION_CHANGES: CHANGES_COLUMNS}

    @dlt.source(name=GOVERNANCE_SOURCE_NAME, max_table_nesting=0)
    def chat_agents_governance() -> Iterator[Any]:
        for name, table_rows in rows.items():
            spec = GOVERNANCE_TABLES_BY_NAME[name]
            yield dlt.resource(
                _rows_or_table([{k: plain_json(k, v) for k, v in r.items()} for r in table_rows]),
                name=name,
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
            warehouse = _Warehouse(client, workspace)
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
            rows: dict[str, list[Row]] = {}
            stale: list[tuple[str, int]] = []
            if ALIAS_HISTORY in selected:
                rows[ALIAS_HISTORY] = _history_rows(warehouse, exists[ALIAS_HISTORY])
            if VERSION_CHANGES in selected:
                rows[VERSION_CHANGES], stale = _change_rows(
                    warehouse, pipeline, exists[VERSION_CHANGES], full_refresh
                )
                _delete(warehouse, stale)
        to_load = {name: found for name, found in rows.items() if found or not exists[name]}
        if to_load:
            creating = not alone and not all(exists.values())
            with tables_created_one_at_a_time(pipeline, creating, holder):
                # Local state goes first (a killed run's package with it), as in the load.
                pipeline.drop()
                pipeline.run(governance_source(to_load))
        counts = _counts(pipeline, selected, workspace)
    written = {name: len(rows[name]) for name in selected}
    log.info(
        "Governance tables of workspace %r: %s",
        workspace,
        ", ".join(f"{name} {written[name]} rows written" for name in selected),
    )
    return GovernanceReport(
        selected, full_refresh, written, counts[0], counts[1], loaded=bool(to_load)
    )


def _counts(
    pipeline: dlt.Pipeline, tables: Collection[str], workspace: str
) -> tuple[dict[str, int], int]:
    with pipeline.sql_client() as client:
        warehouse = _Warehouse(client, workspace)
        rows = {name: warehouse.count(name) for name in tables}
        still_open = f" AND {warehouse.c('valid_to')} IS NULL"
        open_intervals = (
            warehouse.count(ALIAS_HISTORY, still_open) if ALIAS_HISTORY in tables else 0
        )
    return rows, open_intervals
