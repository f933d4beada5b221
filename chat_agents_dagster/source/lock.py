"""One run of the pipeline at a time on a machine: a second run started meanwhile waits, for a
bounded time, then fails naming the run that holds the lock.

Two runs at once would share dlt's working directory (each drops it before starting, and the
other's load package goes with it) and race their merges in the warehouse. Runs launched through
Dagster's queue are kept apart by the `chat_agents_pipeline` pool; this lock covers runs that
bypass the queue (`chat-agents-load`, `dagster job execute`, `dg launch`). It is an advisory lock
on a file beside the pipeline's working directory, which the operating system releases when its
process ends, however it ends (a killed run leaves no stale lock, so whoever the file names is
alive). Its holder writes who it is into the file, for the error of a run that gave up waiting.
Where `fcntl` is missing (Windows) there is no lock.
"""

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import dlt

from chat_agents_dagster.source.configuration import ChatAgentsConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_VARIABLE = "CHAT_AGENTS_LOCK_TIMEOUT_SECONDS"
# Long enough for a large organisation's first load to end, short enough that a run stuck behind
# another gives up well before the next night's run comes.
DEFAULT_LOCK_TIMEOUT_S = 3600.0
_POLL_S = 0.2


class RunLockTimeoutError(RuntimeError):
    """Another run held the pipeline's lock for longer than this run waits."""


def lock_path(pipeline: dlt.Pipeline) -> Path:
    """The pipeline's lock; on DuckDB, the file's: DuckDB lets one process write a file, so
    every workspace's runs into one file take turns (measured: a backfill of two workspaces'
    partitions, started together by a fresh instance's queue, failed the second on the file)."""
    name = pipeline.pipeline_name
    if pipeline.destination.destination_name == "duckdb":
        database = str(getattr(pipeline.destination_client().config.credentials, "database", ""))
        name = "duckdb-" + hashlib.sha256(os.path.abspath(database).encode()).hexdigest()[:16]
    return Path(pipeline.pipelines_dir) / f"{name}.lock"


def lock_timeout() -> float:
    """Seconds a run waits for the lock: CHAT_AGENTS_LOCK_TIMEOUT_SECONDS, read when it starts."""
    raw = os.environ.get(LOCK_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ChatAgentsConfigError(
            f"{LOCK_TIMEOUT_VARIABLE}={raw!r}: give the seconds a run waits for another to end"
            f" (0: not at all; {DEFAULT_LOCK_TIMEOUT_S:g} when unset)."
        )
    return seconds


def _holder_of(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        who = json.loads(handle.read())
        return f"{who['holder']} (pid {who['pid']} on {who['host']}, since {who['since']})"
    except (ValueError, KeyError, TypeError):
        return "a run that has not said who it is yet"


@contextmanager
def one_run_at_a_time(pipeline: dlt.Pipeline, holder: str = "chat-agents-load") -> Iterator[None]:
    """Holds the pipeline's lock for the duration of the block, waiting for it at most
    `lock_timeout()` seconds if another run holds it. `holder` says who this run is."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    timeout = lock_timeout()
    path = lock_path(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _wait(handle, pipeline.pipeline_name, path, timeout)
        handle.seek(0)
        handle.truncate()
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = {"holder": holder, "pid": os.getpid(), "host": socket.gethostname(), "since": since}
        handle.write(json.dumps(who))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait(handle: IO[str], name: str, path: Path, timeout: float) -> None:
    logger.warning(
        "Another run of %s is in progress on this machine: %s (lock %s); waiting for it to end,"
        " at most %g s (%s)",
        name,
        _holder_of(handle),
        path,
        timeout,
        LOCK_TIMEOUT_VARIABLE,
    )
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() - started >= timeout:
                raise RunLockTimeoutError(
                    f"Another run of {name} still holds its lock ({path}) after this run waited"
                    f" {timeout:g} s ({LOCK_TIMEOUT_VARIABLE}): {_holder_of(handle)}. Nothing was"
                    " loaded; run again once it has ended, or end it (its lock goes with its"
                    " process)."
                ) from None
            time.sleep(_POLL_S)
        else:
            logger.info(
                "The other run ended; this one starts after %.1f s", time.monotonic() - started
            )
            return


# The advisory lock's key space, so that this project's lock is told apart from others' on the
# same server.
_CREATION_LOCK = "chat_agents_dagster.tables_created:"


@contextmanager
def tables_created_one_at_a_time(
    pipeline: dlt.Pipeline, needed: bool, holder: str = "chat-agents-load"
) -> Iterator[None]:
    """While `needed` (the run may create tables), holds a lock in the warehouse itself, so that
    two workspaces' runs never create the dataset's tables at the same time: dlt's table
    creation fails the second writer (`SchemaUpdateTerminalError`), measured with two first
    loads into one PostgreSQL dataset. A run that finds the tables there needs no turn, so the
    nights after the first load in parallel. On PostgreSQL a session advisory lock, released
    with the connection however the run ends; DuckDB takes one writer per file anyway (the
    instance's pool of one); other warehouses are not covered (docs/deployment.md)."""
    if not needed or pipeline.destination.destination_name != "postgres":
        yield
        return
    timeout = lock_timeout()
    key = _CREATION_LOCK + pipeline.dataset_name
    with pipeline.sql_client() as client:
        started, waited = time.monotonic(), False

        def acquired() -> bool:
            rows = client.execute_sql("SELECT pg_try_advisory_lock(hashtext(%s))", key)
            return bool(rows and rows[0][0])

        while not acquired():
            if not waited:
                logger.warning(
                    "Another workspace's run is creating the tables of %s; %s waits for it, at"
                    " most %g s (%s)",
                    pipeline.dataset_name,
                    holder,
                    timeout,
                    LOCK_TIMEOUT_VARIABLE,
                )
                waited = True
            if time.monotonic() - started >= timeout:
                raise RunLockTimeoutError(
                    f"Another workspace's run was still creating the tables of"
                    f" {pipeline.dataset_name} after this run waited {timeout:g} s"
                    f" ({LOCK_TIMEOUT_VARIABLE}). Nothing was loaded; run again once it has"
                    " ended."
                )
            time.sleep(_POLL_S)
        try:
            yield
        finally:
            client.execute_sql("SELECT pg_advisory_unlock(hashtext(%s))", key)
