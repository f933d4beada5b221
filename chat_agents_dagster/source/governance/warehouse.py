"""What the governance tables are derived from, read through dlt's SQL client on any destination:
a workspace's aliases as its last load saw them and its alias history (the rows to write come
from alias_history.py), the pairs of versions that have no change row yet, and those versions,
read back as dlt stored them a batch of agents at a time (compared in version_changes.py)."""

import json
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from chat_agents_dagster.source.governance.alias_history import (
    AliasKey,
    Interval,
    LiveAlias,
    moved_on,
)
from chat_agents_dagster.source.governance.version_changes import Row, assemble, compare
from chat_agents_dagster.tables import (
    ALIAS_HISTORY,
    SOURCE_NAME,
    VERSION_CHANGES,
    WORKSPACE,
)

VERSIONS = "agent_versions"
ALIASES = "agent_aliases"
# Agents whose versions are read and compared at a time: memory stays flat however many agents
# a first derivation or a full refresh compares.
_AGENTS_AT_ONCE = 100
Pairs = dict[tuple[str, int], int]  # (agent_id, version) -> the version compared with


class GovernanceInputMissingError(RuntimeError):
    """A table the governance tables are derived from was never loaded."""


def utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Warehouse:
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


def _observed_at(warehouse: Warehouse) -> datetime | None:
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
    return utc(rows[0][0]) if rows else None


def history_rows(warehouse: Warehouse, exists: bool) -> list[Row]:
    live: dict[AliasKey, LiveAlias] = {}
    tombstones: dict[AliasKey, datetime | None] = {}
    for row in warehouse.select(ALIASES):
        key = (row["agent_id"], row["alias"])
        if row.get("deleted_at") is None:
            live[key] = LiveAlias(
                int(row["version"]), utc(row["created_at"]), utc(row["updated_at"])
            )
        else:
            tombstones[key] = utc(row["deleted_at"])
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
            valid_from=utc(row["valid_from"]),  # type: ignore[arg-type]
            valid_to=utc(row["valid_to"]),
            valid_from_source=row["valid_from_source"],
            valid_to_source=row["valid_to_source"],
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
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
    warehouse: Warehouse, schema: dict[str, Any], agents: Collection[str]
) -> dict[tuple[str, int], Row]:
    """Every version of `agents`, assembled, by (agent, version)."""
    c = warehouse.c
    of_agents = f" AND {{}}{c('agent_id')} IN ({', '.join(map(_literal, sorted(agents)))})"
    roots = warehouse.dicts(
        f"SELECT * FROM {warehouse.q(VERSIONS)} WHERE {warehouse.mine}{of_agents.format('')}",
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
            f" WHERE r.{warehouse.mine}{of_agents.format('r.')}",
            _json_columns(table),
        )
    assembled = assemble(roots, nested)
    return {(row["agent_id"], int(row["version"])): row for row in assembled.values()}


def pairs_to_compare(
    warehouse: Warehouse, exists: bool, full_refresh: bool
) -> tuple[Pairs, list[tuple[str, int]]]:
    """(pairs to compare, keys of rows to delete): each consecutive pair of versions with no
    row yet, or a row comparing other versions (every pair, in a full refresh); rows whose
    version is gone from an agent still loaded are deleted. Rows of agents no longer loaded (a
    full refresh of the load forgets agents deleted before it) are kept: like the alias
    history, the API cannot give them back."""
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
    return needed, stale


def change_rows(pipeline: dlt.Pipeline, workspace: str, needed: Pairs) -> Iterator[list[Row]]:
    """The rows of `needed`, a batch per `_AGENTS_AT_ONCE` agents: each batch's versions are
    read, compared and handed to dlt's writer before the next is read."""
    by_agent: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (agent_id, version), previous in sorted(needed.items()):
        by_agent[agent_id].append((version, previous))
    agents = sorted(by_agent)
    schema = _stored_source_schema(pipeline)
    with pipeline.sql_client() as client:
        warehouse = Warehouse(client, workspace)
        for start in range(0, len(agents), _AGENTS_AT_ONCE):
            batch = agents[start : start + _AGENTS_AT_ONCE]
            versions = _versions_of(warehouse, schema, batch)
            yield [
                {
                    WORKSPACE: workspace,
                    "agent_id": agent_id,
                    "version": version,
                    **compare(versions[(agent_id, previous)], versions[(agent_id, version)]),
                }
                for agent_id in batch
                for version, previous in by_agent[agent_id]
            ]


def delete_changes(warehouse: Warehouse, keys: list[tuple[str, int]]) -> None:
    if not keys:
        return
    table, c = warehouse.q(VERSION_CHANGES), warehouse.c
    with warehouse.client.begin_transaction():
        for agent_id, version in keys:
            warehouse.client.execute_sql(
                f"DELETE FROM {table} WHERE {warehouse.mine} AND {c('agent_id')} ="
                f" {_literal(agent_id)} AND {c('version')} = {int(version)}"
            )


def counts(
    pipeline: dlt.Pipeline, tables: Collection[str], workspace: str
) -> tuple[dict[str, int], int]:
    with pipeline.sql_client() as client:
        warehouse = Warehouse(client, workspace)
        rows = {name: warehouse.count(name) for name in tables}
        still_open = f" AND {warehouse.c('valid_to')} IS NULL"
        open_intervals = (
            warehouse.count(ALIAS_HISTORY, still_open) if ALIAS_HISTORY in tables else 0
        )
    return rows, open_intervals
