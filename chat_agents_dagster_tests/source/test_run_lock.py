"""The run lock across processes: a load that finds `chat-agents-load` holding the lock in another
process waits CHAT_AGENTS_LOCK_TIMEOUT_SECONDS, then fails naming that process (the holder wrote
who it is into the lock file), having fetched and loaded nothing; once the holder has ended, the
next load runs, exact."""

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import LOCK_TIMEOUT_VARIABLE, RunLockTimeoutError
from chat_agents_dagster_tests.helpers import load, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth, recorded_loads

LISTING = "GET /v1/agents/pages"
STOP_TIMEOUT = 60.0


def test_a_load_gives_up_on_a_lock_another_process_holds_naming_that_process(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    sandbox = start_sandbox(World.generate(agents=15, seed=3, max_versions=3, max_aliases=2))
    point_at(sandbox, monkeypatch.setenv)
    load()
    database = isolated / "warehouse.duckdb"
    loads_before = recorded_loads(database)
    sandbox.world.create_agent(name="Born while locked", model="mistral-small-latest")

    # The holder takes the lock before its first request; its listing is answered only once the
    # test has seen the other load give up.
    listing, release = threading.Event(), threading.Event()

    def hold(_: SandboxServer, __: dict[str, str]) -> None:
        listing.set()
        release.wait(timeout=STOP_TIMEOUT)

    sandbox.on_request(LISTING, hold)
    holder = subprocess.Popen(
        [sys.executable, "-m", "chat_agents_dagster.source", "--json"],
        cwd=isolated,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert listing.wait(timeout=STOP_TIMEOUT), "the holder never started its load"
        requests_before = sandbox.stats.total()
        monkeypatch.setenv(LOCK_TIMEOUT_VARIABLE, "0.5")
        with pytest.raises(RunLockTimeoutError) as failure:
            load()
        requests_of_the_blocked_load = sandbox.stats.total() - requests_before
    finally:
        release.set()
        _, errors = holder.communicate(timeout=STOP_TIMEOUT)

    message = str(failure.value)
    # The default holder of a run without Dagster, with the holder's own pid and host.
    assert f"chat-agents-load (pid {holder.pid} on {socket.gethostname()}, since " in message
    assert f"waited 0.5 s ({LOCK_TIMEOUT_VARIABLE})" in message
    assert requests_of_the_blocked_load == 0
    assert holder.returncode == 0, errors.decode(errors="replace")
    # Only the holder's load is recorded; the next load, the holder gone, is exact.
    assert recorded_loads(database) == loads_before + 1
    pipeline, _ = load()
    assert_equals_truth(pipeline, sandbox.world)
