"""The pipeline the source loads through, and row counts read back from any SQL destination."""

from collections.abc import Iterable
from typing import Any

import dlt
from dlt.common.destination import TDestinationReferenceArg
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from chat_agents_dagster.settings import (
    DATASET_NAME,
    DEFAULT_DUCKDB_FILE,
    PIPELINE_NAME,
    TABLES_BY_NAME,
)


def make_pipeline(destination: TDestinationReferenceArg = None) -> dlt.Pipeline:
    """`chat_agents_pipeline` into `chat_agents_data`.

    The destination is dlt's `destination_type` setting (`DESTINATION_TYPE=postgres`, ...) unless
    one is passed, and DuckDB when neither says; its credentials are dlt's usual settings
    (`DESTINATION__DUCKDB__CREDENTIALS`, `DESTINATION__POSTGRES__CREDENTIALS`, ...).
    """
    if destination is None:
        destination = dlt.config.get("destination_type", str) or "duckdb"
    if destination == "duckdb" and dlt.secrets.get("destination.duckdb.credentials") is None:
        # dlt would name the file after the pipeline. The default lives here, not in
        # .dlt/config.toml, because dlt treats credentials as secrets and refuses them there;
        # it applies only when no setting names a file, so it never shadows one.
        destination = dlt.destinations.duckdb(credentials=DEFAULT_DUCKDB_FILE)
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=destination,
        dataset_name=DATASET_NAME,
    )


def table_row_counts(
    pipeline: dlt.Pipeline, tables: Iterable[str] = TABLES_BY_NAME
) -> dict[str, int]:
    """Rows in each table, through dlt's SQL client so any SQL destination works; a table that
    was never created (no rows ever loaded) counts 0."""
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in tables:
            name = client.make_qualified_table_name(table)
            try:
                rows: Any = client.execute_sql(f"SELECT COUNT(*) FROM {name}")
            except DatabaseUndefinedRelation:
                rows = [(0,)]
            counts[table] = int(rows[0][0])
    return counts
