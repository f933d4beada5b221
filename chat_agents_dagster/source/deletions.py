"""Soft deletion after a load: agents the complete listing no longer has, and everything they own,
get `deleted_at` instead of vanishing.

dlt offers hard deletes and SCD2 history but no soft delete, and a merge cannot set one column of
a row it does not re-send in full (nested tables included). So this is plain SQL through dlt's SQL
client, run after a successful load. Every run re-sends every listed agent, so an `agents` row
whose last load is older than this run's was not in this run's listing: that is the whole rule,
and it needs no list of ids, so a run whose deletion step failed is caught up by the next one.
A run that failed earlier loaded nothing and marks nothing. A run marks only its own
workspace's rows: the other workspaces' rows were not in its listing, and are not its to judge.
"""

from dlt import Pipeline
from dlt.common.schema.utils import has_table_seen_data

from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES_BY_NAME, WORKSPACE

AGENTS = "agents"


def mark_deleted(
    pipeline: Pipeline, load_id: str, tables: set[str], workspace: str = DEFAULT_WORKSPACE
) -> int:
    """Marks deleted what this load's listing of `workspace` no longer had, in the `tables` it
    loaded. Returns how many agents were newly marked. Rows get the load's time from dlt's
    `_dlt_loads`."""
    schema_tables = pipeline.default_schema.tables
    # A table that never received a row was never created in the destination.
    tables = {t for t in tables if t in schema_tables and has_table_seen_data(schema_tables[t])}
    if AGENTS not in schema_tables or not has_table_seen_data(schema_tables[AGENTS]):
        return 0
    with pipeline.sql_client() as client:
        q = client.make_qualified_table_name
        c = client.escape_column_name
        deleted_at, load, ws = c("deleted_at"), c("_dlt_load_id"), c(WORKSPACE)
        agents, agent_id = q(AGENTS), c("id")
        # Workspace names are checked to be [a-z0-9_] (configuration.py): safe as a literal.
        mine = f"{ws} = '{workspace}'"
        marked = 0
        with client.begin_transaction():
            if AGENTS in tables:
                stale = f"{deleted_at} IS NULL AND {mine} AND {load} <> '{load_id}'"
                rows = client.execute_sql(f"SELECT COUNT(*) FROM {agents} WHERE {stale}")
                marked = int(rows[0][0]) if rows else 0
                client.execute_sql(
                    f"UPDATE {agents} SET {deleted_at} = (SELECT {c('inserted_at')} FROM"
                    f" {q('_dlt_loads')} WHERE {c('load_id')} = '{load_id}') WHERE {stale}"
                )
            for table in sorted(tables - {AGENTS}):
                # The column holding the agent's id, after the workspace, in its reference to
                # `agents`.
                child, key = q(table), c(TABLES_BY_NAME[table].references[0].columns[1])
                client.execute_sql(
                    f"UPDATE {child} SET {deleted_at} = (SELECT a.{deleted_at} FROM {agents} a"
                    f" WHERE a.{ws} = {child}.{ws} AND a.{agent_id} = {child}.{key})"
                    f" WHERE {deleted_at} IS NULL AND {mine} AND {key} IN (SELECT {agent_id}"
                    f" FROM {agents} WHERE {deleted_at} IS NOT NULL AND {mine})"
                )
        return marked
