"""The run lock through Dagster: a run that finds another holding it waits a bounded time, then
fails naming the holder and loading nothing; the next run, once the holder has ended, loads."""

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import (
    LOCK_TIMEOUT_VARIABLE,
    ChatAgentsConfigError,
    make_pipeline,
    one_run_at_a_time,
)
from chat_agents_dagster_tests.dagster_helpers import definitions, run_job
from chat_agents_dagster_tests.helpers import point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth, snapshot

HOLDER = "the holder under test"


@contextmanager
def lock_held_elsewhere() -> Iterator[None]:
    """The pipeline's lock held, for the block, by another open of the lock file (flock treats
    it as another run)."""
    release, taken = threading.Event(), threading.Event()

    def hold() -> None:
        with one_run_at_a_time(make_pipeline(), HOLDER):
            taken.set()
            release.wait(timeout=120)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(timeout=60)
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_a_run_gives_up_waiting_for_the_lock_naming_who_holds_it_and_loads_nothing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    before = snapshot(isolated / "warehouse.duckdb")
    sandbox.world.create_agent(name="Born while locked", model="mistral-small-latest")
    monkeypatch.setenv(LOCK_TIMEOUT_VARIABLE, "0.5")

    with lock_held_elsewhere():
        blocked = run_job(defs, instance)

    assert not blocked.success
    [failure] = [e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    assert error is not None
    message = error.message + (error.cause.message if error.cause else "")
    assert f"{HOLDER} (pid {os.getpid()} on {socket.gethostname()}" in message
    assert LOCK_TIMEOUT_VARIABLE in message
    assert snapshot(isolated / "warehouse.duckdb") == before
    # The holder gone, the next run loads what the blocked one could not.
    assert run_job(defs, instance).success
    assert_equals_truth(make_pipeline(), sandbox.world)


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_lock_timeout_fails_the_run_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCK_TIMEOUT_VARIABLE, value)
    with (
        pytest.raises(ChatAgentsConfigError, match=f"{LOCK_TIMEOUT_VARIABLE}={value!r}"),
        one_run_at_a_time(make_pipeline()),
    ):
        pass
