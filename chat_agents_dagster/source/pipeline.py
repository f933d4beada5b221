"""The pipeline the source loads through, and row counts read back from any SQL destination."""

from typing import Any

import dlt
from dlt.common.destination import TDestinationReferenceArg

from chat_agents_dagster.settings import DATASET_NAME, PIPELINE_NAME, TABLES


def make_pipeline(destination: TDestinationReferenceArg = None) -> dlt.Pipeline:
    """`chat_agents_pipeline` into `chat_agents_data`.

    The destination is dlt's `destination_type` setting (`DESTINATION_TYPE=postgres`, ...) unless
    one is passed, and DuckDB when neither says; its credentials are dlt's usual settings
    (`DESTINATION__DUCKDB__CREDENTIALS`, `DESTINATION__POSTGRES__CREDENTIALS`, ...).
    """
    if destination is None:
        destination = dlt.config.get("destination_type", str) or "duckdb"
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=destination,
        dataset_name=DATASET_NAME,
    )


def table_row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows in each of the five tables, through dlt's SQL client so any SQL destination works."""
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in TABLES:
            name = client.make_qualified_table_name(table.name)
            rows: Any = client.execute_sql(f"SELECT COUNT(*) FROM {name}")
            counts[table.name] = int(rows[0][0])
    return counts
