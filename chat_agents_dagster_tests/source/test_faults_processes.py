"""Loads in processes of their own (the standalone `chat-agents-load`, or a Dagster run of
chat_agents_job): one killed with SIGKILL, during extraction or at any point of dlt's load step,
leaves a warehouse that the next run of the same kind brings to exactly the API's truth, nothing
lost and no key twice; two started at once run one after the other, and both succeed.

The sandbox decides when extraction is killed (at its nth version request); `killable_load`
stops the load step at a named point for the kill. The run after a kill is the same load in this
process.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import dlt
import duckdb
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import DATASET_NAME
from chat_agents_dagster_tests.dagster_helpers import check_results, definitions, run_job
from chat_agents_dagster_tests.helpers import listing_requests, load, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth, recorded_loads

LISTING = "GET /v1/agents/pages"
ALIASES = "GET /v1/agents/{agent_id}/aliases"
VERSION = "GET /v1/agents/{agent_id}/versions/{version}"
REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 60.0
KILLABLE = "chat_agents_dagster_tests.killable_load"
# The killed run and the next one: `chat-agents-load`, or a Dagster run of chat_agents_job.
RUNNERS = ["cli", "dagster"]


@pytest.fixture
def server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=15, seed=31, max_versions=3, max_aliases=3))
    point_at(server, monkeypatch.setenv)
    return server


def change_the_world(world: World) -> set[str]:
    """A night's worth of change: new agents, new versions, an alias moved and one removed, and
    deleted agents, so that every table has something to merge and something to mark. Returns
    the deleted agents' ids."""
    agents = world.agents()
    for n in range(3):
        world.create_agent(name=f"Born tonight {n}", model="mistral-small-latest")
    for agent in agents[:4]:
        world.update_agent(agent["id"], instructions=f"Changed tonight: {agent['id']}")
    with_aliases = [a for a in world.agents() if world.aliases(a["id"])]
    moved = with_aliases[0]
    alias = world.aliases(moved["id"])[0]
    world.set_alias(moved["id"], alias["alias"], 0)
    removed = with_aliases[1]
    world.delete_alias(removed["id"], world.aliases(removed["id"])[0]["alias"])
    for agent in agents[-2:]:
        world.delete_agent(agent["id"])
    return {agent["id"] for agent in agents[-2:]}


def start_load(
    directory: Path, module: str, *args: str, name: str = "load"
) -> subprocess.Popen[bytes]:
    """The load in a process of its own, with this test's environment (its sandbox, DuckDB file
    and dlt working directory); output goes to `name`.out and .err."""
    out_path, err_path = directory / f"{name}.out", directory / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=directory,
            env={**os.environ, "PYTHONPATH": str(REPO)},  # for chat_agents_dagster_tests
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def output(directory: Path, name: str = "load") -> str:
    return (directory / f"{name}.err").read_text(errors="replace")[-3000:]


def kill_at_nth_request(
    server: SandboxServer, route: str, nth: int, process: subprocess.Popen[bytes]
) -> list[int]:
    """SIGKILL `process` just before the sandbox answers its `nth` request of `route`; returns
    the list the hook appends the request's number to when it kills."""
    seen, killed = [0], []

    def hook(server: SandboxServer, _: dict[str, str]) -> None:
        seen[0] += 1
        if seen[0] < nth:
            server.on_request(route, hook)
            return
        os.kill(process.pid, signal.SIGKILL)
        killed.append(seen[0])

    server.on_request(route, hook)
    return killed


def live_agents(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            f"SELECT id FROM {DATASET_NAME}.agents WHERE deleted_at IS NULL"
        ).fetchall()
    return {row[0] for row in rows}


def rows_of_unrecorded_loads(database: Path) -> int:
    """Rows in the dataset's tables written by a load that `_dlt_loads` does not record."""
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = ? AND column_name = '_dlt_load_id'",
            [DATASET_NAME],
        ).fetchall()
        total = 0
        for (table,) in tables:
            total += connection.execute(
                f'SELECT COUNT(*) FROM {DATASET_NAME}."{table}" WHERE _dlt_load_id NOT IN'
                f" (SELECT load_id FROM {DATASET_NAME}._dlt_loads)"
            ).fetchall()[0][0]
    return total


def next_run(runner: str) -> dlt.Pipeline:
    """The run after a kill, the way the killed one ran: `chat-agents-load`, or a Dagster run
    whose checks must all pass."""
    if runner == "cli":
        return load()[0]
    result = run_job(definitions(), dg.DagsterInstance.ephemeral())
    assert result.success and all(e.passed for e in check_results(result).values())
    return make_pipeline()


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("first_load", [True, False], ids=["first_load", "nightly_load"])
def test_a_load_killed_during_extraction_is_completed_by_the_next_run(
    server: SandboxServer, isolated: Path, first_load: bool, runner: str
) -> None:
    if not first_load:
        load()
        change_the_world(server.world)
    server.stats.reset()

    marker = isolated / "never-written"
    process = start_load(isolated, KILLABLE, "nowhere", str(marker), runner)
    killed = kill_at_nth_request(server, VERSION, 3, process)
    process.wait(timeout=STOP_TIMEOUT)

    assert process.returncode == -signal.SIGKILL, output(isolated)
    assert killed == [3]
    assert_equals_truth(next_run(runner), server.world)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("point", ["copied", "merged", "committing", "marking"])
def test_a_load_killed_during_the_load_step_is_completed_by_the_next_run(
    server: SandboxServer, isolated: Path, point: str, runner: str
) -> None:
    load()
    database = isolated / "warehouse.duckdb"
    loads_before = recorded_loads(database)
    deleted = change_the_world(server.world)
    marker = isolated / f"stopped-{point}"

    process = start_load(isolated, KILLABLE, point, str(marker), runner)
    deadline = time.monotonic() + STOP_TIMEOUT
    while not marker.exists():
        assert process.poll() is None, f"the load ended before {point}:\n{output(isolated)}"
        assert time.monotonic() < deadline, f"the load never reached {point}"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)

    assert process.returncode == -signal.SIGKILL
    # The kill left the warehouse where the point says: the killed load is not recorded (but
    # for `marking`, which comes after it), from `merged` on its rows are in the tables, and the
    # deleted agents are still live until deletions are marked.
    assert recorded_loads(database) == loads_before + (point == "marking")
    if point in ("merged", "committing"):
        assert rows_of_unrecorded_loads(database) > 0
    assert deleted <= live_agents(database)
    assert_equals_truth(next_run(runner), server.world)


def test_two_loads_started_at_once_run_one_after_the_other_and_both_succeed(
    server: SandboxServer, isolated: Path
) -> None:
    first = start_load(isolated, "chat_agents_dagster.source", "--json", name="first")
    second: list[subprocess.Popen[bytes]] = []

    def hold_until_the_second_waits(_: SandboxServer, __: dict[str, str]) -> None:
        # The first run holds the lock from before its first request; its listing is answered
        # only once the second run has started and found the lock held.
        second.append(start_load(isolated, "chat_agents_dagster.source", "--json", name="second"))
        deadline = time.monotonic() + STOP_TIMEOUT
        while "waiting for it to end" not in output(isolated, "second"):
            assert second[0].poll() is None and time.monotonic() < deadline
            time.sleep(0.05)

    server.on_request(LISTING, hold_until_the_second_waits)
    first.wait(timeout=STOP_TIMEOUT)
    second[0].wait(timeout=STOP_TIMEOUT)

    assert first.returncode == 0, output(isolated, "first")
    assert second[0].returncode == 0, output(isolated, "second")
    # The second run began after the first had committed: it found every agent loaded and asked
    # only for the listing and the aliases.
    requests = server.stats.requests()
    listings = [i for i, request in enumerate(requests) if request.route == LISTING]
    per_run = listing_requests(server)
    assert len(listings) == 2 * per_run
    assert {r.route for r in requests[listings[per_run] :]} == {LISTING, ALIASES}
    for name in ("first", "second"):
        summary = json.loads((isolated / f"{name}.out").read_text())
        assert summary["rows"]["agents"] == len(server.world.agents())
    pipeline, _ = load()
    assert_equals_truth(pipeline, server.world)
