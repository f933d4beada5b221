"""A warehouse loaded before the tables had a workspace column: its rows are the default
workspace's (one key loaded them), and the first run after the upgrade says so in the tables.

The column is added with dlt's own column definition for the destination, then filled. dlt
compares its schema with the tables as they are before it alters them, so its load then finds the
column there and adds nothing. Nothing is dropped or fetched again: soft-deleted agents and alias
tombstones, which the API cannot give back, stay.
"""

import logging

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.destinations.job_client_impl import SqlJobClientBase

from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES, WORKSPACE

logger = logging.getLogger(__name__)


def adopt_rows_without_workspace(pipeline: dlt.Pipeline) -> list[str]:
    """Gives the default workspace to every table that has no workspace column; the tables it
    changed."""
    with pipeline.destination_client() as job_client:
        if not isinstance(job_client, SqlJobClientBase):
            return []
        storage = job_client.get_storage_tables([table.name for table in TABLES])
        # A table that does not exist has no columns; a new run creates it with the column.
        legacy = [name for name, columns in storage if columns and WORKSPACE not in columns]
        client = job_client.sql_client
        column: TColumnSchema = {"name": WORKSPACE, "data_type": "text", "nullable": True}
        for name in legacy:
            table = client.make_qualified_table_name(name)
            added = ", ".join(job_client._make_add_column_sql([column]))
            client.execute_sql(f"ALTER TABLE {table} {added}")
            ws = client.escape_column_name(WORKSPACE)
            client.execute_sql(
                f"UPDATE {table} SET {ws} = '{DEFAULT_WORKSPACE}' WHERE {ws} IS NULL"
            )
        if legacy:
            logger.warning(
                "Tables loaded before workspaces: %s now hold the %r workspace's rows.",
                ", ".join(legacy),
                DEFAULT_WORKSPACE,
            )
        return legacy
