"""Helpers the tests share: environment isolation, loading against a sandbox, reading DuckDB."""

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import RunStats, make_pipeline, run_load
from chat_agents_dagster.source.configuration import AGENTS_PAGE_SIZE

API_KEY = "sk-test-0123456789abcdef-recognisable"
REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / ".dlt" / "config.toml"

# Fast retries: the code uses dlt's retry settings; tests shrink the waits, not the logic.
TEST_ENV = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.01",
    "RUNTIME__REQUEST_MAX_RETRY_DELAY": "2",
    "RUNTIME__REQUEST_MAX_ATTEMPTS": "5",
    "RUNTIME__REQUEST_TIMEOUT": "10",
}


# The variables that steer the test run itself, not the code under test.
TEST_SWITCHES = ("CHAT_AGENTS_TEST_", "CHAT_AGENTS_REQUIRE_", "CHAT_AGENTS_SAVE_SCREENSHOTS")


def isolate_environment(
    directory: Path,
    setenv: Callable[[str, str], None],
    delenv: Callable[..., None],
) -> None:
    """A test's own dlt project in `directory`: the repository's `.dlt/config.toml`, its own
    dlt working directory and DuckDB file, fast retries, no telemetry."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION", "DLT_", "PIPELINES__")) or name in (
            "MISTRAL_API_KEY",
        ):
            delenv(name, raising=False)
        # A developer's deployment settings (alert channels, owners, a schedule) are not the
        # shipped ones; the tests' own switches stay.
        if name.startswith("CHAT_AGENTS_") and not name.startswith(TEST_SWITCHES):
            delenv(name, raising=False)
    for name, value in TEST_ENV.items():
        setenv(name, value)
    setenv("DLT_DATA_DIR", str(directory / "dlt_data"))
    # The shipped settings, as users run with them, and none of a developer's own secrets.toml.
    (directory / ".dlt").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHIPPED_CONFIG, directory / ".dlt" / "config.toml")
    setenv("DLT_PROJECT_DIR", str(directory))
    setenv("DESTINATION__DUCKDB__CREDENTIALS", str(directory / "warehouse.duckdb"))


def point_at(server: SandboxServer, setenv: Callable[[str, str], None], key: str = API_KEY) -> None:
    setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", server.base_url)
    setenv("SOURCES__CHAT_AGENTS_SOURCE__API_KEY", key)


def listing_requests(server: SandboxServer, page_size: int = AGENTS_PAGE_SIZE) -> int:
    """Requests one complete cursor listing of `server`'s agents takes: a page per `page_size`
    agents, and the empty page a token on the last page leads to."""
    agents = len(server.world)
    pages = max(1, math.ceil(agents / page_size))
    return pages + (1 if agents and server.config.token_on_last_page else 0)


def load(**run_args: Any) -> tuple[dlt.Pipeline, RunStats]:
    """One run of the pipeline with a fresh source, as `chat-agents-load` runs it."""
    pipeline = make_pipeline()
    return pipeline, run_load(pipeline, **run_args).stats


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


def telemetry_logs(directory: Path) -> list[Path]:
    """The telemetry lines Dagster and dg keep under an instance or user directory until they
    upload them (`logs/`, `.logs_queue/`)."""
    return sorted(
        path
        for folder in ("logs", ".logs_queue")
        for path in (directory / folder).glob("*")
        if path.is_file()
    )
