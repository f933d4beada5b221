"""One run of the pipeline, start to finish: the recipe `chat-agents-load` and the Dagster asset
both follow, so that the order of its steps is written once.

1. Take the run lock (one run of a workspace at a time on this machine).
2. Decide whether this is a full refresh (the caller's flag or `CHAT_AGENTS_FULL_REFRESH`).
3. Give tables loaded before workspaces the default workspace (migration.py), then read what the
   warehouse holds for this workspace (record.py): it decides what is fetched.
4. Build a fresh source for the selected tables. Where the workspace has the tables to itself (no
   other workspace is configured, none has rows), a table with no row yet, or one being fully
   refreshed, is written by replace instead of merge; tables shared with other workspaces are
   only ever merged into, and a full refresh there fetches everything again and merges it.
5. Run it (`runner`: dlt's `pipeline.run`, or dagster-dlt's, which reports to Dagster); a run that
   may create tables while another workspace's run does waits for it (lock.py).
6. Mark deleted what the listing no longer has (deletions.py), then count the rows,
   still holding the lock, so that a run waiting for it never reads a half-written warehouse.
"""

import logging
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.extract import DltSource

from chat_agents_dagster.source.configuration import workspace_arguments
from chat_agents_dagster.source.deletions import mark_deleted
from chat_agents_dagster.source.lock import one_run_at_a_time, tables_created_one_at_a_time
from chat_agents_dagster.source.migration import adopt_rows_without_workspace
from chat_agents_dagster.source.pipeline import duckdb_memory_explained, table_row_counts
from chat_agents_dagster.source.record import read_record
from chat_agents_dagster.source.resources import chat_agents_source
from chat_agents_dagster.source.stats import RunStats
from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES

logger = logging.getLogger(__name__)

FULL_REFRESH_VARIABLE = "CHAT_AGENTS_FULL_REFRESH"
ALL_TABLES = tuple(table.name for table in TABLES)

T = TypeVar("T")
Runner = Callable[[dlt.Pipeline, DltSource, dict[str, Any]], T]


def full_refresh_requested(asked: bool = False) -> bool:
    """The one place that decides: asked by the caller (`--full-refresh`, the Dagster run config
    `full_refresh`), or `CHAT_AGENTS_FULL_REFRESH=true` for every run started while it is set."""
    variable = os.environ.get(FULL_REFRESH_VARIABLE, "").strip().lower()
    return asked or variable in ("1", "true", "yes", "on")


def run_with_dlt(pipeline: dlt.Pipeline, source: DltSource, options: dict[str, Any]) -> LoadInfo:
    """dlt's own run. Local state goes first (a killed run's package with it); dlt restores the
    pipeline's state and schema from the destination, as dagster-dlt's run does."""
    pipeline.drop()
    return pipeline.run(source, **options)


@dataclass
class LoadReport(Generic[T]):
    """What a run did: the runner's result, the API accounting, and the rows of each table it
    loaded (every row, and live ones), read while the lock was still held."""

    result: T
    tables: tuple[str, ...]
    full_refresh: bool
    stats: RunStats
    rows: dict[str, int]
    live_rows: dict[str, int]


FULL_REFRESH_FAILED = (
    "This run was a full refresh: the tables it refreshed may be left empty or partly loaded."
    " The next run, with or without a full refresh, fetches whatever they lack."
)


@contextmanager
def _explained(pipeline: dlt.Pipeline, full_refresh: bool) -> Iterator[None]:
    try:
        with duckdb_memory_explained(pipeline):
            yield
    except Exception as error:
        if full_refresh:
            error.add_note(FULL_REFRESH_FAILED)
        raise


def run_load(
    pipeline: dlt.Pipeline,
    *,
    tables: Collection[str] = ALL_TABLES,
    full_refresh: bool = False,
    runner: Runner[T] = run_with_dlt,  # type: ignore[assignment]
    log: logging.Logger = logger,
    stats: RunStats | None = None,
    holder: str = "chat-agents-load",
    workspace: str = DEFAULT_WORKSPACE,
    alone: bool = True,
    **source_args: Any,
) -> LoadReport[T]:
    """One run of `pipeline` (`workspace`'s) loading `tables` (all five by default); see the
    module docstring. `source_args` go to `chat_agents_source` (settings from configuration
    otherwise). `stats`, when given, is filled as the run goes, so that a caller can report on a
    run that failed. `holder` names this run to a run that waits for the lock. `alone` says no
    other workspace is configured: with others, one of them may be loading at the same time."""
    selected = tuple(name for name in ALL_TABLES if name in set(tables))
    full_refresh = full_refresh_requested(full_refresh)
    stats = stats if stats is not None else RunStats()
    with one_run_at_a_time(pipeline, holder), _explained(pipeline, full_refresh):
        adopt_rows_without_workspace(pipeline)
        record = read_record(pipeline, workspace)
        # Replace and a dropping refresh empty a whole table: only for a workspace on its own.
        own_tables = alone and not any(record.others.values())
        if full_refresh:
            log.warning(
                "Full refresh of workspace %r: %s %s.",
                workspace,
                ", ".join(selected),
                "dropped and loaded again"
                if own_tables
                else "fetched whole and merged (the tables hold other workspaces too)",
            )
        duckdb = pipeline.destination.destination_name == "duckdb"
        source = chat_agents_source(
            full_refresh_tables=selected if full_refresh else (),
            record=record,
            # DuckDB reads an empty JSON lines file as one column, "json", and fails to load it.
            empty_table_format="insert_values" if duckdb else None,
            run_stats=stats,
            workspace=workspace,
            **{**workspace_arguments(workspace), **source_args},
        ).with_resources(*selected)
        for name in selected:
            resource = source.resources[name]
            if own_tables and (full_refresh or not record.rows[name]):
                # The run sends all of it anyway, and replace writes straight into the table
                # where merge stages and deduplicates first: at 3,000 agents, about half the
                # DuckDB memory and load time. `root_key` keeps nested tables mergeable after.
                resource.apply_hints(write_disposition="replace")
            if duckdb:
                # Also undoes the format a run that created the table empty left on it.
                resource.apply_hints(file_format="jsonl")
        options: dict[str, Any] = (
            {"refresh": "drop_resources"} if full_refresh and own_tables else {}
        )
        if duckdb:
            # DuckDB loads JSON lines about twice as fast as dlt's default INSERT statements.
            options["loader_file_format"] = "jsonl"
        # A table another workspace's run may be creating at this moment: dlt's table creation
        # is not safe against a second writer doing the same, so such runs take turns.
        creating = not alone and not all(record.rows[name] for name in selected)
        with tables_created_one_at_a_time(pipeline, creating, holder):
            result = runner(pipeline, source, options)
        trace = pipeline.last_trace
        load_info = trace.last_load_info if trace else None
        if load_info is not None and load_info.loads_ids:
            marked = mark_deleted(pipeline, load_info.loads_ids[-1], set(selected), workspace)
            if marked:
                log.info("Marked %d agents deleted, with what they own", marked)
        counts = table_row_counts(pipeline, selected, workspace)
    report = stats.as_dict()
    log.info(
        "Run: %d requests (%s), %d retried, %d rate limited; agents %s",
        report["total"],
        ", ".join(f"{k}: {v}" for k, v in report["by_endpoint"].items()),
        report["retried"],
        report["rate_limited"],
        ", ".join(f"{n} {k}" for k, n in report["agents"].items()),
    )
    rows = {table: every for table, (every, _) in counts.items()}
    live_rows = {table: live for table, (_, live) in counts.items()}
    return LoadReport(result, selected, full_refresh, stats, rows, live_rows)
