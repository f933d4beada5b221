"""`dg dev` as a child process: started in a process group of its own, probed until its
webserver serves and its code location has loaded, stopped with everything it started.

`chat-agents-dev` runs it for users; the tests that drive `dg dev` use the same functions.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from typing import Any

LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename
      ... on RepositoryLocation { name repositories { name jobs { name } } }
      ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    """A port the kernel says is free; released at once so that the webserver can bind it (a
    race with another process is possible, and then startup fails loudly)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class DagsterDevError(RuntimeError):
    """dg dev exited, or did not serve its UI and code location in time."""


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `data` of one GraphQL answer from the webserver at `url`; errors raise."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    if body.get("errors"):
        raise DagsterDevError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def location_entries(url: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = graphql(url, LOCATIONS_QUERY)["workspaceOrError"][
        "locationEntries"
    ]
    return entries


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except OSError:  # refused, reset or timed out while it starts
        return False


def wait_until_ready(process: subprocess.Popen[Any], url: str, timeout: float) -> None:
    """Until the webserver answers and every code location has finished loading. A location
    that failed to load raises with Dagster's message; so does dg dev exiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DagsterDevError(f"dg dev exited ({process.returncode}) before serving")
        if _serving(url):
            entries = location_entries(url)
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                for entry in entries:
                    location = entry["locationOrLoadError"] or {}
                    if location.get("__typename") == "PythonError":
                        raise DagsterDevError(
                            f"code location {entry['name']} failed to load: {location['message']}"
                        )
                return
        time.sleep(0.5)
    raise DagsterDevError(f"dg dev not serving {url} after {timeout:.0f} s")


# Some harnesses start children with SIGINT and SIGTERM ignored, and ignored signals survive fork
# and exec: dg dev would then never stop on SIGTERM. This trampoline restores the defaults,
# then execs the real command in the same process (same pid, same group). Not preexec_fn: that is
# unsafe in a process running threads, and the sandbox serves from threads of this one.
DEFAULT_SIGNALS = (
    "import os, signal, sys;"
    " signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL);"
    " os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def start(arguments: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen[Any]:
    """`dg dev ARGUMENTS` with this interpreter (so the same virtualenv), in a process group of
    its own, so that `stop` reaches the webserver, the daemon and the code servers it starts, and
    nothing else. With no `-m` or `-w` among the arguments, dg finds the project from the working
    directory (`[tool.dg]` in pyproject.toml)."""
    return subprocess.Popen(
        [sys.executable, "-c", DEFAULT_SIGNALS, "-m", "dagster_dg_cli.cli", "dev", *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **popen,
    )


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # every process of the group has exited
        os.killpg(pgid, signum)


def stop(process: subprocess.Popen[Any], timeout: float = 30.0) -> str:
    """SIGTERM to the whole group (an interrupt for every dagster process: dg dev stops its
    services), SIGKILL to whatever is left after `timeout`. Says how it went."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
        how = f"exited {process.returncode} on SIGTERM"
    except subprocess.TimeoutExpired:
        how = f"still running {timeout:.0f} s after SIGTERM, killed"
    signal_group(process.pid, signal.SIGKILL)
    process.wait()
    return how
