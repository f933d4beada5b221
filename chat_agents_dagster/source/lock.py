"""One run of the pipeline at a time on a machine: a second run started meanwhile waits.

Two runs at once would share dlt's working directory (each drops it before starting, and the
other's load package goes with it) and race their merges in the warehouse. Runs launched through
Dagster's queue are kept apart by the `chat_agents_pipeline` pool; this lock covers runs that
bypass the queue (`chat-agents-load`, `dagster job execute`). It is an advisory lock on a file
beside the pipeline's working directory, which the operating system releases when its process
ends, however it ends (a killed run leaves no stale lock). Where `fcntl` is missing (Windows)
there is no lock.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dlt

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


def lock_path(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.lock"


@contextmanager
def one_run_at_a_time(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Holds the pipeline's lock for the duration of the block, waiting for it if another run
    holds it."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    path = lock_path(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning(
                "Another run of %s is in progress on this machine (lock %s); waiting for it to end",
                pipeline.pipeline_name,
                path,
            )
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            logger.info(
                "The other run ended; this one starts after %.1f s", time.monotonic() - started
            )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
