"""The pipeline the source loads through: its destination by configuration, DuckDB's memory
bounds and their error, and row counts read back from any SQL destination."""

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.destination import Destination, TDestinationReferenceArg
from dlt.common.runtime.collector import NULL_COLLECTOR, LogCollector
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.source.configuration import destination_type
from chat_agents_dagster.tables import (
    DATASET_NAME,
    DEFAULT_WORKSPACE,
    PIPELINE_NAME,
    TABLES_BY_NAME,
    WORKSPACE,
)

PROGRESS_PERIOD_S = 10.0
# Never named like the dataset (chat_agents_data.duckdb): DuckDB then cannot tell the catalog
# from the schema and the load fails.
DEFAULT_DUCKDB_FILE = "chat_agents.duckdb"


# DuckDB's settings for the connections dlt opens to the DuckDB file, under the user's own
# `global_config` (DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG). DuckDB's default lets its
# buffer pool keep what a load writes, up to 80% of the machine's memory, so a run's memory would
# grow with the warehouse. One thread: with two, this limit makes DuckDB spill and the load slow
# down. Much lower, DuckDB's JSON reader runs out of memory. The measurements are in
# benchmarks/README.md ("Performance log").
DUCKDB_SETTINGS: dict[str, Any] = {"memory_limit": "128MB", "threads": 1}


def _duckdb_destination(**config: Any) -> TDestinationReferenceArg:
    """DuckDB with `DUCKDB_SETTINGS` under the user's own settings, in the file the user names
    (whole: `DESTINATION__DUCKDB__CREDENTIALS`; field by field: `...__DATABASE`, which dlt
    resolves as usual), else `chat_agents.duckdb` in the working directory.

    The settings are passed on a credentials object because dlt treats DuckDB's settings as
    credentials: a `[destination.duckdb.credentials]` table in config.toml makes it refuse a
    file named field by field. dlt's resolution keeps what the object sets and fills the rest.
    """
    whole: Any = dlt.secrets.get("destination.duckdb.credentials")
    by_field: Any = dlt.secrets.get("destination.duckdb.credentials.database")
    own = dlt.secrets.get("destination.duckdb.credentials.global_config", dict) or {}
    named: Any
    if isinstance(whole, str):
        named = whole
    elif by_field is None:
        # dlt would name the file after the pipeline. Absolute: dlt resolves a relative path
        # against the directory of the pipeline's first run, kept in its local state, not
        # against this run's.
        named = os.path.abspath(DEFAULT_DUCKDB_FILE)
    else:
        named = None
    credentials = DuckDbCredentials(named, global_config={**DUCKDB_SETTINGS, **own})
    return dlt.destinations.duckdb(credentials=credentials, **config)


class DuckDbOutOfMemoryError(RuntimeError):
    """DuckDB needed more memory for the load than its `memory_limit` allows."""


@contextmanager
def duckdb_memory_explained(pipeline: dlt.Pipeline) -> Iterator[None]:
    """DuckDB running out of its memory limit surfaces from dlt as a load job that failed its
    retries; this names the setting to raise instead."""
    try:
        yield
    except PipelineStepFailed as error:
        if pipeline.destination.destination_name != "duckdb" or "Out of Memory" not in str(error):
            raise
        raise DuckDbOutOfMemoryError(
            "DuckDB ran out of the memory this load allows it (its memory_limit,"
            f" {DUCKDB_SETTINGS['memory_limit']} unless set). Raise it for this warehouse, e.g."
            " DESTINATION__DUCKDB__CREDENTIALS__"
            'GLOBAL_CONFIG=\'{"memory_limit": "1GB"}\' (or global_config under'
            " [destination.duckdb.credentials] in .dlt/secrets.toml), and run again: the next"
            " run fetches whatever the warehouse lacks."
        ) from error


def pipeline_name(workspace: str = DEFAULT_WORKSPACE, name: str = PIPELINE_NAME) -> str:
    """Each workspace loads through a pipeline of its own, so its own dlt state and run lock;
    the default workspace's keeps the name it had before there were workspaces."""
    return name if workspace == DEFAULT_WORKSPACE else f"{name}__{workspace}"


def make_pipeline(
    destination: TDestinationReferenceArg = None,
    progress: logging.Logger | None = None,
    workspace: str = DEFAULT_WORKSPACE,
    name: str = PIPELINE_NAME,
) -> dlt.Pipeline:
    """`workspace`'s pipeline (`chat_agents_pipeline` for the default one; `name` for another
    of the project's pipelines) into `chat_agents_data`, which holds every workspace.

    With `progress`, dlt's own progress (rows per table while extracting, files normalized, load
    jobs done) goes to that logger every 10 s and at the end of each step, so a long run is not
    silent; Dagster runs pass their run logger.

    The destination is dlt's `destination_type` setting (`DESTINATION_TYPE=postgres`, ...) unless
    one is passed, and DuckDB when neither says; its credentials are dlt's usual settings
    (`DESTINATION__DUCKDB__CREDENTIALS`, `DESTINATION__POSTGRES__CREDENTIALS`, ...).
    """
    if destination is None:
        destination = destination_type()
    # A merge stages its rows in the staging dataset and truncates it first: two workspaces
    # loading at once into one staging dataset would truncate each other's rows. Each workspace
    # stages apart; the default one where it always did.
    staging: dict[str, Any] = (
        {}
        if workspace == DEFAULT_WORKSPACE
        else {"staging_dataset_name_layout": f"%s_staging_{workspace}"}
    )
    if destination == "duckdb":
        destination = _duckdb_destination(**staging)
    elif isinstance(destination, str) and staging:
        destination = Destination.from_reference(destination, **staging)
    return dlt.pipeline(
        pipeline_name=pipeline_name(workspace, name),
        destination=destination,
        dataset_name=DATASET_NAME,
        progress=(
            LogCollector(PROGRESS_PERIOD_S, logger=progress, dump_system_stats=False)
            if progress is not None
            else NULL_COLLECTOR
        ),
    )


def table_row_counts(
    pipeline: dlt.Pipeline,
    tables: Iterable[str] = TABLES_BY_NAME,
    workspace: str | None = None,
) -> dict[str, tuple[int, int]]:
    """(all rows, live rows: not marked deleted) of each table (`workspace`'s only, if given), in
    one query per table on one connection, through dlt's SQL client so any SQL destination
    works; a table that was never created counts (0, 0)."""
    counts: dict[str, tuple[int, int]] = {}
    with pipeline.sql_client() as client:
        deleted_at = client.escape_column_name("deleted_at")
        live = f"SUM(CASE WHEN {deleted_at} IS NULL THEN 1 ELSE 0 END)"
        # Workspace names are checked to be [a-z0-9_] (configuration.py): safe as a literal.
        where = (
            f" WHERE {client.escape_column_name(WORKSPACE)} = '{workspace}'" if workspace else ""
        )
        for table in tables:
            name = client.make_qualified_table_name(table)
            try:
                rows: Any = client.execute_sql(f"SELECT COUNT(*), {live} FROM {name}{where}")
            except DatabaseUndefinedRelation:
                rows = [(0, 0)]
            counts[table] = (int(rows[0][0]), int(rows[0][1] or 0))
    return counts
