"""Comparing the warehouse with the sandbox's truth, and with itself before a failed run."""

from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.schema.utils import has_table_seen_data

from chat_agents_dagster.sandbox import World
from chat_agents_dagster.tables import DATASET_NAME, DEFAULT_WORKSPACE, SOURCE_NAME, TABLES
from chat_agents_dagster_tests.helpers import query

# The four tables whose rows are whole agents (and so have nested `__tools` and `__versions`).
AGENT_ROW_TABLES = {
    "agents": ("id",),
    "agent_detail": ("id",),
    "agent_versions": ("agent_id", "version"),
    "agent_version_detail": ("agent_id", "version"),
}


def current_rows(
    pipeline: dlt.Pipeline, table: str, *columns: str, workspace: str = DEFAULT_WORKSPACE
) -> set[tuple[Any, ...]]:
    """`workspace`'s live rows of `table`."""
    sql = (
        f"SELECT {', '.join(columns)} FROM {{dataset}}.{table}"
        f" WHERE deleted_at IS NULL AND workspace = '{workspace}'"
    )
    return set(query(pipeline, sql))


def rows_of_workspace(pipeline: dlt.Pipeline, workspace: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that `workspace` holds, ordered by key: equal results mean the
    workspace's rows were not touched in between."""
    return {
        table.name: query(
            pipeline,
            f"SELECT * FROM {{dataset}}.{table.name} WHERE workspace = '{workspace}'"
            f" ORDER BY {', '.join(table.primary_key)}",
        )
        for table in TABLES
    }


def deleted(pipeline: dlt.Pipeline, table: str, column: str) -> set[Any]:
    sql = f"SELECT {column} FROM {{dataset}}.{table} WHERE deleted_at IS NOT NULL"
    return {row[0] for row in query(pipeline, sql)}


def live_tool_counts(
    pipeline: dlt.Pipeline, table: str, workspace: str = DEFAULT_WORKSPACE
) -> dict[tuple[Any, ...], int]:
    """Nested `<table>__tools` rows per live row of `table` in `workspace`, by its key."""
    keys = AGENT_ROW_TABLES[table]
    nested = pipeline.default_schema.tables.get(f"{table}__tools")
    if nested is None or not has_table_seen_data(nested):  # no agent has a tool
        return {key: 0 for key in current_rows(pipeline, table, *keys, workspace=workspace)}
    columns = ", ".join(f"t.{key}" for key in keys)
    rows = query(
        pipeline,
        f"SELECT {columns}, COUNT(n._dlt_id) FROM {{dataset}}.{table} t"
        f" LEFT JOIN {{dataset}}.{table}__tools n ON n._dlt_parent_id = t._dlt_id"
        f" WHERE t.deleted_at IS NULL AND t.workspace = '{workspace}' GROUP BY {columns}",
    )
    return {tuple(row[:-1]): row[-1] for row in rows}


def assert_equals_truth(
    pipeline: dlt.Pipeline, world: World, workspace: str = DEFAULT_WORKSPACE
) -> None:
    """`workspace`'s live rows are exactly the world's (agents with their name and active
    version, versions, aliases and what they point at, every agent row's tools), every row of a
    vanished agent is marked deleted, and no table or nested table holds a key twice."""
    agents = world.agents()

    def rows(table: str, *columns: str) -> set[tuple[Any, ...]]:
        return current_rows(pipeline, table, *columns, workspace=workspace)

    snapshots = {(a["id"], v["version"]): v for a in agents for v in world.versions(a["id"])}
    by_id = {(a["id"],): a for a in agents}
    assert rows("agents", "id", "name", "version") == {
        (a["id"], a["name"], a["version"]) for a in agents
    }
    assert rows("agent_detail", "id", "name", "version") == {
        (a["id"], a["name"], a["version"]) for a in agents
    }
    for table in ("agent_versions", "agent_version_detail"):
        assert rows(table, "agent_id", "version", "name") == {
            (*key, snapshot["name"]) for key, snapshot in snapshots.items()
        }, table
    assert rows("agent_aliases", "agent_id", "alias", "version") == {
        (a["id"], x["alias"], x["version"]) for a in agents for x in world.aliases(a["id"])
    }
    expected_tools = {
        "agents": {key: len(a["tools"] or []) for key, a in by_id.items()},
        "agent_detail": {key: len(a["tools"] or []) for key, a in by_id.items()},
        "agent_versions": {key: len(s["tools"] or []) for key, s in snapshots.items()},
        "agent_version_detail": {key: len(s["tools"] or []) for key, s in snapshots.items()},
    }
    for table, expected in expected_tools.items():
        assert live_tool_counts(pipeline, table, workspace) == expected, f"{table}__tools"
    listed_versions = query(
        pipeline,
        "SELECT a.id, COUNT(*) FROM {dataset}.agents a JOIN {dataset}.agents__versions v"
        " ON v._dlt_parent_id = a._dlt_id WHERE a.deleted_at IS NULL"
        f" AND a.workspace = '{workspace}' GROUP BY a.id",
    )
    assert dict(listed_versions) == {a["id"]: len(a["versions"]) for a in agents if a["versions"]}
    assert_no_duplicate_keys(pipeline)


def assert_no_duplicate_keys(pipeline: dlt.Pipeline) -> None:
    for table in TABLES:
        keys = ", ".join(table.primary_key)
        total, distinct = query(
            pipeline, f"SELECT COUNT(*), COUNT(DISTINCT ({keys})) FROM {{dataset}}.{table.name}"
        )[0]
        assert total == distinct, f"duplicate keys in {table.name}"
    for parent in AGENT_ROW_TABLES:
        for nested in (f"{parent}__tools", f"{parent}__versions"):
            schema_table = pipeline.default_schema.tables.get(nested)
            if schema_table is None or not has_table_seen_data(schema_table):
                continue
            total, distinct = query(
                pipeline,
                f"SELECT COUNT(*), COUNT(DISTINCT (_dlt_parent_id, _dlt_list_idx))"
                f" FROM {{dataset}}.{nested}",
            )[0]
            assert total == distinct, f"duplicate rows in {nested}"


def snapshot(database: Path) -> dict[str, list[str]]:
    """Every table of the dataset, dlt's own included, as sorted rows: equal snapshots mean the
    warehouse was not touched in between."""
    if not database.exists():
        return {}
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
            " ORDER BY table_name",
            [DATASET_NAME],
        ).fetchall()
        return {
            name: sorted(
                repr(row)
                for row in connection.execute(f'SELECT * FROM {DATASET_NAME}."{name}"').fetchall()
            )
            for (name,) in tables
        }


def recorded_loads(database: Path) -> int:
    """The loads of the agents that the DuckDB file at `database` records (the governance
    tables' own loads, which follow them, not counted)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            f"SELECT COUNT(*) FROM {DATASET_NAME}._dlt_loads WHERE schema_name = ?", [SOURCE_NAME]
        ).fetchall()
    return int(rows[0][0])
