"""Helpers the tests share: environment isolation, loading against a sandbox, reading DuckDB."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import RunStats, make_pipeline, run_load

API_KEY = "sk-test-0123456789abcdef-recognisable"

# Fast retries: the code uses dlt's retry settings; tests shrink the waits, not the logic.
TEST_ENV = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
    "RUNTIME__REQUEST_MAX_RETRY_DELAY": "2",
    "RUNTIME__REQUEST_MAX_ATTEMPTS": "5",
    "RUNTIME__REQUEST_TIMEOUT": "10",
}


def isolate_environment(
    directory: Path,
    setenv: Callable[[str, str], None],
    delenv: Callable[..., None],
) -> None:
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION", "DLT_", "PIPELINES__")) or name in (
            "MISTRAL_API_KEY",
        ):
            delenv(name, raising=False)
    for name, value in TEST_ENV.items():
        setenv(name, value)
    setenv("DLT_DATA_DIR", str(directory / "dlt_data"))
    setenv("DLT_PROJECT_DIR", str(directory))
    setenv("DESTINATION__DUCKDB__CREDENTIALS", str(directory / "warehouse.duckdb"))


def point_at(server: SandboxServer, setenv: Callable[[str, str], None], key: str = API_KEY) -> None:
    setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", server.base_url)
    setenv("SOURCES__CHAT_AGENTS_SOURCE__API_KEY", key)


def load(**source_args: Any) -> tuple[dlt.Pipeline, RunStats]:
    """One run of the pipeline with a fresh source, as the product runs it."""
    pipeline = make_pipeline()
    stats = run_load(pipeline, **source_args)
    return pipeline, stats


def query(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL with `{dataset}` naming the dataset, through dlt's client for the destination."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(sql.format(dataset=client.fully_qualified_dataset_name()))
        return [tuple(row) for row in rows or []]


def columns(pipeline: dlt.Pipeline, table: str) -> set[str]:
    return set(pipeline.default_schema.get_table_columns(table))


def table_names(pipeline: dlt.Pipeline) -> set[str]:
    return set(pipeline.default_schema.data_table_names())


def error_chain(error: BaseException) -> list[BaseException]:
    """The error and everything it wraps (causes, contexts and dlt's wrapped exception)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or current in seen:
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return seen
