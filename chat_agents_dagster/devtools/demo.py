"""The whole thing offline: start the sandbox API, run `chat_agents_job` through Dagster into
DuckDB, and print what was loaded and what the checks said.

    chat-agents-demo [--agents 200] [--port 0] [--workspaces eu,us]

With `--workspaces`, the sandbox serves those workspaces too, each with its own key and agents,
and the job runs once per workspace's partition, into the same tables.
"""

import argparse
import os
import sys
import time
from typing import Any

import dagster as dg

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster.tables import DEFAULT_WORKSPACE

SANDBOX_KEY = "sandbox-key"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def summary(result: dg.ExecuteInProcessResult, seconds: float) -> str:
    outcome = "succeeded" if result.success else "FAILED"
    of = (
        f" for workspace {result.dagster_run.tags['dagster/partition']}"
        if ("dagster/partition" in result.dagster_run.tags)
        else ""
    )
    lines = [f"chat_agents_job{of} {outcome} in {seconds:.1f} s (run {result.run_id})", ""]
    lines.append(f"  {'table':<40} {'rows':>8}")
    events = [
        *result.asset_materializations_for_node("chat_agents_load"),
        *result.asset_materializations_for_node("chat_agents_governance"),
    ]
    for event in events:
        metadata = {name: value.value for name, value in event.metadata.items()}
        table = str(metadata["dagster/table_name"])
        lines.append(f"  {table:<40} {metadata['dagster/row_count']:>8}")
    # The run's requests are on its observation of the API asset, once.
    requests = 0
    for logged in result.all_events:
        if logged.event_type_value == "ASSET_OBSERVATION":
            observed = logged.asset_observation_data.asset_observation.metadata
            requests += int(str(observed["api_requests"].value))
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    lines += ["", f"  API requests: {requests}"]
    lines.append(f"  Checks: {len(evaluations) - len(failed)} passed, {len(failed)} failed")
    for evaluation in failed:
        lines.append(
            f"    {evaluation.asset_key.to_user_string()} {evaluation.check_name}"
            f" ({evaluation.severity.value})"
        )
    return "\n".join(lines) + "\n"


def point_at_sandbox(server: SandboxServer) -> None:
    """The code location, and every run it starts, reads the API's address and key from here."""
    os.environ["SOURCES__CHAT_AGENTS_SOURCE__BASE_URL"] = server.base_url
    os.environ["SOURCES__CHAT_AGENTS_SOURCE__API_KEY"] = SANDBOX_KEY


def add_workspaces(server: SandboxServer, names: list[str], agents: int, seed: int) -> None:
    """More workspaces on the sandbox, each with its own key and agents, and the code location
    configured for them, as a user would (CHAT_AGENTS_WORKSPACES and a key per workspace)."""
    for n, name in enumerate(names, start=1):
        key = f"{SANDBOX_KEY}-{name}"
        server.add_workspace(key, World.generate(agents=agents, seed=seed + n))
        os.environ[f"SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__{name.upper()}__API_KEY"] = key
    os.environ["CHAT_AGENTS_WORKSPACES"] = ",".join([DEFAULT_WORKSPACE, *names])


def run_job(
    instance: dg.DagsterInstance,
    run_config: dict[str, Any] = QUIET,
    partition: str | None = None,
) -> tuple[dg.ExecuteInProcessResult, float]:
    """One in-process run of chat_agents_job (of one workspace's partition, if given), recorded
    in `instance`, and its duration."""
    # Imported here: the code location reads its deployment settings when it loads.
    from chat_agents_dagster.definitions import defs

    job = defs.resolve_job_def("chat_agents_job")
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, partition_key=partition
    )
    return result, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="agents in the sandbox world")
    parser.add_argument("--max-versions", type=int, default=5, help="versions per agent, at most")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated world")
    parser.add_argument("--port", type=int, default=0, help="sandbox port (0: any free port)")
    parser.add_argument(
        "--workspaces",
        default="",
        help="more workspaces beside the default one, comma-separated (e.g. eu,us)",
    )
    args = parser.parse_args(argv)
    extra = [name.strip() for name in args.workspaces.split(",") if name.strip()]

    world = World.generate(agents=args.agents, seed=args.seed, max_versions=args.max_versions)
    with SandboxServer(world, SandboxConfig(api_key=SANDBOX_KEY), port=args.port) as server:
        sys.stdout.write(f"Sandbox API with {args.agents} agents at {server.base_url}\n")
        point_at_sandbox(server)
        if extra:
            add_workspaces(server, extra, args.agents, args.seed)
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
        instance = instance or dg.DagsterInstance.ephemeral()
        succeeded = True
        for partition in [DEFAULT_WORKSPACE, *extra] if extra else [None]:
            result, seconds = run_job(instance, partition=partition)
            sys.stdout.write(summary(result, seconds) + ("\n" if extra else ""))
            succeeded = succeeded and result.success
    destination = os.environ.get("DESTINATION__DUCKDB__CREDENTIALS", "chat_agents.duckdb")
    sys.stdout.write(
        f"\nLoaded into DuckDB file {destination}, dataset chat_agents_data.\n"
        "\nNext:\n"
        "  .venv/bin/chat-agents-dev   the same in the Dagster UI, http://127.0.0.1:3000:\n"
        "                              lineage, runs, each table's checks (Ctrl-C stops it)\n"
        "  your own agents             README.md, 'Against the real API'\n"
    )
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
