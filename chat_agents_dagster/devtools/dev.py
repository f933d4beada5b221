"""The Dagster UI against the sandbox API, with data in it: the sandbox starts, `dg dev`
starts, `chat_agents_job` runs once into the Dagster instance kept in `.dagster_home/`, and the UI
shows that run, the tables and their checks; Ctrl-C stops it all.

    chat-agents-dev [--port 3000] [--agents 200] [--home .dagster_home] [--no-initial-load]

Run it from the repository root: the instance takes its settings from ./dagster.yaml, dlt its own
from ./.dlt/, and the tables go to ./chat_agents.duckdb, as with `chat-agents-demo`.
"""

import argparse
import filecmp
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import dagster as dg
import dlt

from chat_agents_dagster.devtools import dg_dev
from chat_agents_dagster.devtools.demo import SANDBOX_KEY, point_at_sandbox, run_job, summary
from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster.source import DEFAULT_DUCKDB_FILE

STARTUP_TIMEOUT = 180.0
# The run's INFO messages in the terminal: what it fetched, and dlt's progress on long runs.
PROGRESS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chat-agents-dev", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the UI's port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="the UI's address")
    parser.add_argument("--agents", type=int, default=200, help="agents in the sandbox world")
    parser.add_argument("--max-versions", type=int, default=5, help="versions per agent, at most")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated world")
    parser.add_argument("--sandbox-port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(".dagster_home"),
        help="the Dagster instance's directory (DAGSTER_HOME); runs are kept there across starts",
    )
    parser.add_argument(
        "--no-initial-load",
        action="store_true",
        help="serve the UI at once, without running chat_agents_job first",
    )
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def prepare_instance(home: Path, project: Path) -> Path:
    """The instance directory, with the project's dagster.yaml (the pool that keeps runs apart,
    telemetry off) copied in: with DAGSTER_HOME set, Dagster reads no other."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = project / "dagster.yaml"
    if settings.exists() and not (
        (home / "dagster.yaml").exists() and filecmp.cmp(settings, home / "dagster.yaml")
    ):
        shutil.copyfile(settings, home / "dagster.yaml")
    elif not settings.exists():
        sys.stdout.write(f"No dagster.yaml in {project}: the instance has Dagster's defaults.\n")
    return home


def pin_project(project: Path) -> None:
    """dg dev runs in the instance directory (started elsewhere, it warns that the working
    directory's dagster.yaml is not used), and its code location and runs inherit that working
    directory: so dlt's project directory and the DuckDB file are given as absolute paths, the
    ones they have here. Settings the user made are kept."""
    os.environ.setdefault("DLT_PROJECT_DIR", str(project))
    if (
        "DESTINATION__DUCKDB__CREDENTIALS" not in os.environ
        and dlt.secrets.get("destination.duckdb.credentials") is None
    ):
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = str(project / DEFAULT_DUCKDB_FILE)


def initial_load(instance: dg.DagsterInstance) -> None:
    """chat_agents_job once, in this process, into the instance dg dev serves: its run,
    materializations and check results are in the UI from the start. It bypasses the run queue
    and its pool; the pipeline's lock still keeps it apart from a run the daemon may start."""
    sys.stdout.write("Loading the sandbox's agents through chat_agents_job...\n")
    sys.stdout.flush()
    result, seconds = run_job(instance, PROGRESS)
    sys.stdout.write(summary(result, seconds))
    if not result.success:
        sys.stdout.write(f"The run failed: the UI shows why at /runs/{result.run_id}\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C or SIGTERM stops everything. Handled, never ignored, also in dg dev, which
    # would otherwise inherit an ignored signal from whatever started this process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    clock = time.monotonic()
    project = Path.cwd()
    os.environ["DAGSTER_HOME"] = str(prepare_instance(args.home, project))
    pin_project(project)

    world = World.generate(agents=args.agents, seed=args.seed, max_versions=args.max_versions)
    config = SandboxConfig(api_key=SANDBOX_KEY)
    with SandboxServer(world, config, port=args.sandbox_port) as server:
        sys.stdout.write(f"Sandbox API with {args.agents} agents at {server.base_url}\n")
        point_at_sandbox(server)
        port = args.port or dg_dev.free_port()
        url = f"http://{args.host}:{port}"
        # Opened before dg dev starts: opening creates the instance's SQLite tables, and
        # two processes creating them at once fail ("table instigators already exists").
        instance = dg.DagsterInstance.get()
        process = dg_dev.start(
            [
                # The repository's workspace.yaml: the location then has the name `dg dev` gives
                # it from [tool.dg], whose project dg would not find from the instance directory.
                *("-w", str(project / "workspace.yaml")),
                *("--host", args.host, "--port", str(port)),
            ],
            env=dict(os.environ),
            cwd=os.environ["DAGSTER_HOME"],
        )
        # The group id, so that whoever started this process can clean up after a SIGKILL.
        sys.stdout.write(f"dg dev started (process group {process.pid})\n")
        sys.stdout.flush()
        try:
            with instance:
                if not args.no_initial_load:
                    initial_load(instance)  # while dg dev starts
            dg_dev.wait_until_ready(process, url, STARTUP_TIMEOUT)
            sys.stdout.write(
                f"\nDagster UI ready in {time.monotonic() - clock:.0f} s: {url}\n"
                f"  lineage     {url}/asset-groups\n"
                f"  checks      {url}/assets/chat_agents_data/agents?view=checks\n"
                f"  runs        {url}/runs\n"
                f"Instance in {os.environ['DAGSTER_HOME']}. Ctrl-C stops the UI and the sandbox.\n"
            )
            sys.stdout.flush()
            process.wait()
            sys.stdout.write(f"dg dev exited on its own ({process.returncode})\n")
            return 1
        except KeyboardInterrupt:
            sys.stdout.write("\nStopping dg dev and the sandbox...\n")
            return 0
        except dg_dev.DagsterDevError as error:
            sys.stdout.write(f"{error}\n")
            return 1
        finally:
            sys.stdout.write(f"dg dev {dg_dev.stop(process)}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
