"""A `dg dev` session for tests: started from the repository root as a user starts it, torn
down whatever happens, and read through GraphQL (runs, their status and their event logs)."""

import json
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chat_agents_dagster.devtools import dg_dev

REPO_ROOT = Path(__file__).resolve().parents[1]
# The location's name as the project declares it to dg; workspace.yaml gives it the same one.
LOCATION_NAME = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"][
    "code_location_name"
]
JOB = "chat_agents_job"

STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0
SHUTDOWN_TIMEOUT = 30.0

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

RUN_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { runId status parentRunId tags { key value }
    stats { __typename ... on RunStatsSnapshot { enqueuedTime launchTime startTime endTime } } }
  ... on PythonError { message } } }
"""
LOGS_QUERY = """
query Logs($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename
    ... on MessageEvent { message level stepKey }
    ... on ErrorEvent { error { message causes { message } } } } }
  ... on PythonError { message } } }
"""


@dataclass
class DagsterDev:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(
            f"{path.name}: {line}"
            for path in (self.stdout, self.stderr)
            for line in path.read_text(errors="replace").splitlines()[-lines:]
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return dg_dev.graphql(self.url, query, variables)


def temporary_instance_dir(log: str) -> Path | None:
    """The throwaway instance directory dg dev announces when DAGSTER_HOME is unset."""
    found = re.search(r"Using temporary directory (\S+) for storage", log)
    return Path(found.group(1)) if found else None


@contextmanager
def dagster_dev(env: dict[str, str], logs: Path) -> Iterator[DagsterDev]:
    """`dg dev` from the repository root, torn down whatever happens."""
    port = dg_dev.free_port()
    stdout, stderr = logs / "dg_dev.stdout.log", logs / "dg_dev.stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = dg_dev.start(
            ["-p", str(port)],
            env,
            cwd=REPO_ROOT,  # dg finds the project ([tool.dg]) and dagster.yaml here
            stdout=out,
            stderr=err,
        )
    dev = DagsterDev(process, port, stdout, stderr)
    try:
        yield dev
    finally:
        # dg dev stops its services and deletes its temporary instance directory on SIGTERM.
        clock = time.monotonic()
        how = dg_dev.stop(process, SHUTDOWN_TIMEOUT)
        # A killed dg dev leaves its instance directory in the repository root; remove it,
        # and only it (another dg dev may be running from the same directory).
        leftover = temporary_instance_dir(dev.log())
        if leftover and leftover.parent == REPO_ROOT and leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
            how += f"; removed its leftover {leftover.name}"
        print(f"[dg dev] shutdown: {how}, {time.monotonic() - clock:.1f} s")


def wait_until_serving(dev: DagsterDev) -> None:
    try:
        dg_dev.wait_until_ready(dev.process, dev.url, STARTUP_TIMEOUT)
    except dg_dev.DagsterDevError as error:
        pytest.fail(f"{error}:\n{dev.log_tail()}")


def job_location(dev: DagsterDev) -> tuple[str, str]:
    """(location, repository) holding the job; the location must have loaded without error, under
    the name workspace.yaml gives it too."""
    entries = dg_dev.location_entries(dev.url)
    assert len(entries) == 1, f"the project should give one code location: {entries}"
    assert entries[0]["name"] == LOCATION_NAME, entries
    location = entries[0]["locationOrLoadError"]
    assert location and location["__typename"] == "RepositoryLocation", (
        f"code location did not load: {location}\n{dev.log_tail()}"
    )
    holding = [
        (location["name"], repository["name"])
        for repository in location["repositories"]
        if JOB in {job["name"] for job in repository["jobs"]}
    ]
    assert len(holding) == 1, f"{JOB} not found once in {location}"
    return holding[0]


def run_record(dev: DagsterDev, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = dev.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return run


def run_errors(dev: DagsterDev, run_id: str) -> str:
    """What went wrong in a run, from its event log, for a failure message."""
    logs = dev.graphql(LOGS_QUERY, {"runId": run_id})["logsForRun"]
    lines: list[str] = []
    for event in logs.get("events", []):
        if event.get("level") not in ("ERROR", "CRITICAL") and not event.get("error"):
            continue
        lines.append(f"{event.get('stepKey') or '-'}: {event.get('message')}")
        if event.get("error"):
            # The step error wraps the exception that says what happened (its causes).
            error = event["error"]
            lines += [error["message"], *(cause["message"] for cause in error["causes"])]
    return "\n".join(lines) or json.dumps(logs)[:4000]


def wait_for_end(dev: DagsterDev, run_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Wait for every run to end, however it ends."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [run_record(dev, run_id) for run_id in run_ids]
        if all(run["status"] in TERMINAL for run in runs):
            return runs
        if time.monotonic() > deadline:
            states = {run["runId"]: run["status"] for run in runs}
            pytest.fail(f"runs not finished after {timeout:.0f} s: {states}\n{dev.log_tail()}")
        time.sleep(0.5)


def wait_for_runs(dev: DagsterDev, run_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Wait for every run to end, then require that each succeeded."""
    runs = wait_for_end(dev, run_ids, timeout)
    for run in runs:
        assert run["status"] == "SUCCESS", (
            f"run {run['runId']} ended {run['status']}:\n{run_errors(dev, run['runId'])}"
        )
    return runs


def wait_for(what: str, dev: DagsterDev, found: Callable[[], Any], timeout: float) -> Any:
    """`found()` once it is truthy; fails, saying `what` never came, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := found()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{dev.log_tail()}")
        time.sleep(0.2)
    return value


def without_dg_telemetry(env: dict[str, str], directory: Path) -> None:
    """dg's telemetry off, by a dg.toml of the test's own, with a home of its own in which any
    telemetry log written would show."""
    dg_config = directory / "dg.toml"
    dg_config.write_text("[cli.telemetry]\nenabled = false\n")
    env.update(HOME=str(directory / "home"), DG_CLI_CONFIG=str(dg_config))
