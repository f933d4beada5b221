"""What the warehouse holds, read once at the start of a run: the record that decides what the run
fetches.

The tables themselves are the record, not a copy of it in dlt's state. A copy can drift from
the tables it describes: a full refresh that fails after dropping them, a load killed after some
tables were merged, a subset run, a table emptied by hand. Each left a state that claimed more
than the tables held, and the runs after it never fetched what was missing. Read from the tables,
the record can only claim what is there, so after any failure the next run fetches exactly what
the tables lack. It also keeps dlt's state small: at 10,000 agents the copy was megabytes of JSON,
restored and rewritten on every run.

Only live rows count (`deleted_at` null): an agent that comes back is loaded afresh. Only the
run's workspace's rows count: the tables hold every workspace's, and each workspace is loaded by
a pipeline of its own.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES, WORKSPACE

# What identifies the state of an agent: its last change, its active version and its versions.
Fingerprint = tuple[Any, ...]
AliasRow = tuple[Any, Any, Any]  # version, created_at, updated_at: enough for a tombstone


def _instant(value: Any) -> Any:
    """A timestamp as UTC microseconds, from the API's ISO text or the warehouse's datetime, so
    the two compare; a value that is neither is kept as it is and so never matches."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        instant = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(instant.timestamp() * 1_000_000)
    return value


def _versions(value: Any) -> tuple[int, ...]:
    """An agent's `versions`: a list from the API, JSON text or a list from a JSON column."""
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(sorted(int(v) for v in value or ()))


def fingerprint(agent: dict[str, Any]) -> Fingerprint:
    """Changes when the agent's `updated_at`, its active `version` or its versions change: an
    alias move or a version switch may leave `updated_at` alone."""
    return (
        _instant(agent.get("updated_at")),
        agent.get("version"),
        _versions(agent.get("versions")),
    )


@dataclass
class WarehouseRecord:
    """Per table, the live keys the warehouse holds for one workspace; `rows` counts every row of
    each table (deleted ones and other workspaces' included), 0 for a table that does not
    exist."""

    listing: dict[str, Fingerprint] = field(default_factory=dict)
    detail: dict[str, Fingerprint] = field(default_factory=dict)
    versions: dict[str, set[int]] = field(default_factory=dict)
    version_detail: dict[str, set[int]] = field(default_factory=dict)
    aliases: dict[str, dict[str, AliasRow]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    # Per table, the rows of other workspaces.
    others: dict[str, int] = field(default_factory=dict)

    def without(self, tables: Iterable[str]) -> "WarehouseRecord":
        """The record with `tables` read as empty: what a full refresh of them starts from."""
        tables = set(tables)
        return WarehouseRecord(
            listing={} if "agents" in tables else self.listing,
            detail={} if "agent_detail" in tables else self.detail,
            versions={} if "agent_versions" in tables else self.versions,
            version_detail={} if "agent_version_detail" in tables else self.version_detail,
            aliases={} if "agent_aliases" in tables else self.aliases,
            rows={t: 0 if t in tables else n for t, n in self.rows.items()},
            others=self.others,
        )


class _Reader:
    def __init__(self, client: SqlClientBase[Any], workspace: str) -> None:
        self.client = client
        c = client.escape_column_name
        # Workspace names are checked to be [a-z0-9_] (configuration.py): safe as a literal.
        self.in_workspace = f"{c(WORKSPACE)} = '{workspace}'"

    def rows(self, table: str, columns: str, where: str = "") -> list[tuple[Any, ...]]:
        """Rows of `table`, none if it does not exist (never loaded, or dropped)."""
        name = self.client.make_qualified_table_name(table)
        try:
            return [
                tuple(r)
                for r in self.client.execute_sql(f"SELECT {columns} FROM {name} {where}") or []
            ]
        except DatabaseUndefinedRelation:
            return []

    def current(self, table: str, *columns: str) -> list[tuple[Any, ...]]:
        c = self.client.escape_column_name
        return self.rows(
            table,
            ", ".join(c(n) for n in columns),
            f"WHERE {c('deleted_at')} IS NULL AND {self.in_workspace}",
        )


def read_record(pipeline: dlt.Pipeline, workspace: str = DEFAULT_WORKSPACE) -> WarehouseRecord:
    """`workspace`'s record, in one connection to the warehouse."""
    record = WarehouseRecord()
    with pipeline.sql_client() as client:
        read = _Reader(client, workspace)
        c, q = client.escape_column_name, client.make_qualified_table_name
        theirs = f"SUM(CASE WHEN {read.in_workspace} THEN 0 ELSE 1 END)"
        for table in TABLES:
            counted = read.rows(table.name, f"COUNT(*), {theirs}")
            record.rows[table.name] = int(counted[0][0]) if counted else 0
            record.others[table.name] = int(counted[0][1] or 0) if counted else 0
        listed_versions: dict[str, list[int]] = {}
        for agent_id, number in read.rows(
            "agents",
            f"a.{c('id')}, v.{c('value')}",
            f"a JOIN {q('agents__versions')} v ON v.{c('_dlt_parent_id')} = a.{c('_dlt_id')}"
            f" WHERE a.{c('deleted_at')} IS NULL AND a.{read.in_workspace}",
        ):
            listed_versions.setdefault(agent_id, []).append(number)
        for agent_id, updated_at, version in read.current("agents", "id", "updated_at", "version"):
            record.listing[agent_id] = fingerprint(
                {
                    "updated_at": updated_at,
                    "version": version,
                    "versions": listed_versions.get(agent_id),
                }
            )
        for agent_id, updated_at, version, versions in read.current(
            "agent_detail", "id", "updated_at", "version", "versions"
        ):
            record.detail[agent_id] = fingerprint(
                {"updated_at": updated_at, "version": version, "versions": versions}
            )
        for name, loaded in (
            ("agent_versions", record.versions),
            ("agent_version_detail", record.version_detail),
        ):
            for agent_id, number in read.current(name, "agent_id", "version"):
                loaded.setdefault(agent_id, set()).add(int(number))
        for agent_id, alias, version, created_at, updated_at in read.current(
            "agent_aliases", "agent_id", "alias", "version", "created_at", "updated_at"
        ):
            record.aliases.setdefault(agent_id, {})[alias] = (version, created_at, updated_at)
    return record
