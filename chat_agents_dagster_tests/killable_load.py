"""`python -m chat_agents_dagster_tests.killable_load POINT MARKER [RUNNER]`: a load, stopped at
POINT of dlt's load step so that a test can SIGKILL it there. RUNNER is `cli`, the standalone
load (`chat-agents-load`, the default), or `dagster`, a run of `chat_agents_job` in this process.

At POINT the process writes the file MARKER and then waits forever; the test waits for MARKER and
kills the process. The points, in the order a load reaches them:
- `copied`: one load file is in the warehouse (a table's new rows, or the staging copy a merge
  reads), the rest are not;
- `merged`: the staged rows of one table are merged into it (incremental runs only), the other
  tables are not;
- `committing`: every table and dlt's `_dlt_pipeline_state` row are written, the load is not yet
  recorded in `_dlt_loads` (so dlt will not restore that state);
- `marking`: the load is committed, deletions are not marked yet;
- `nowhere`: not stopped (the test kills it by other means).
"""

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
from dlt.destinations.job_client_impl import SqlJobClientBase, SqlLoadJob

import chat_agents_dagster.source.run as run_module
from chat_agents_dagster.source.__main__ import main


def _stop_here(marker: Path) -> None:
    marker.write_text("stopped")
    threading.Event().wait()  # until SIGKILL


def _after_first(run: Callable[..., Any], marker: Path) -> Callable[..., Any]:
    lock, done = threading.Lock(), list[bool]()

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = run(*args, **kwargs)
        with lock:
            first = not done
            done.append(True)
        if first:
            _stop_here(marker)
        return result

    return patched


def _before(run: Callable[..., Any], marker: Path) -> Callable[..., Any]:
    def patched(*args: Any, **kwargs: Any) -> Any:
        _stop_here(marker)
        return run(*args, **kwargs)

    return patched


def stop_at(point: str, marker: Path) -> None:
    if point == "copied":
        DuckDbCopyJob.run = _after_first(DuckDbCopyJob.run, marker)  # type: ignore[method-assign]
    elif point == "merged":
        SqlLoadJob.run = _after_first(SqlLoadJob.run, marker)  # type: ignore[method-assign]
    elif point == "committing":
        SqlJobClientBase.complete_load = _before(  # type: ignore[method-assign]
            SqlJobClientBase.complete_load, marker
        )
    elif point == "marking":
        run_module.mark_deleted = _before(run_module.mark_deleted, marker)
    elif point != "nowhere":
        raise SystemExit(f"unknown point {point!r}")


def through_dagster() -> int:
    from chat_agents_dagster.definitions import defs

    return 0 if defs.resolve_job_def("chat_agents_job").execute_in_process().success else 1


if __name__ == "__main__":
    stop_at(sys.argv[1], Path(sys.argv[2]))
    runner = sys.argv[3] if len(sys.argv) > 3 else "cli"
    sys.exit(through_dagster() if runner == "dagster" else main([]))
