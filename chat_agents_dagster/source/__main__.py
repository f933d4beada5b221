"""Load the Agents API into the configured destination without Dagster, and say what was loaded.

python -m chat_agents_dagster.source        (or the console script chat-agents-load)

Every workspace of `CHAT_AGENTS_WORKSPACES` is loaded, one after another (`--workspace` picks
some), and its governance tables derived after its load; a workspace that fails does not stop
the others, and the exit status says one failed.
"""

import argparse
import json
import logging
import sys

from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.source.configuration import (
    WORKSPACES_VARIABLE,
    ChatAgentsConfigError,
    check_workspace_name,
    configured_workspaces,
)
from chat_agents_dagster.source.governance.derive import GovernanceReport, run_governance
from chat_agents_dagster.source.pipeline import make_pipeline
from chat_agents_dagster.source.run import LoadReport, run_load


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or getattr(error, "exception", None) is not None:
        error = getattr(error, "exception", None) or error.__cause__  # type: ignore[assignment]
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line per workspace")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="load everything again, ignoring what earlier runs loaded",
    )
    parser.add_argument(
        "--workspace",
        action="append",
        help=f"load only this workspace (repeatable); default: all of {WORKSPACES_VARIABLE}",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        configured = configured_workspaces()
        chosen = [check_workspace_name(w, "--workspace") for w in args.workspace or configured]
    except ChatAgentsConfigError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    failed = 0
    for workspace in chosen:
        failed += _load(workspace, args.full_refresh, args.json, alone=len(configured) == 1)
    return 1 if failed else 0


def _load(workspace: str, full_refresh: bool, as_json: bool, alone: bool) -> int:
    pipeline = make_pipeline(
        progress=logging.getLogger("chat_agents_dagster.progress"), workspace=workspace
    )
    try:
        report: LoadReport[LoadInfo] = run_load(
            pipeline, full_refresh=full_refresh, workspace=workspace, alone=alone
        )
        governance: GovernanceReport = run_governance(
            workspace, full_refresh=full_refresh, alone=alone
        )
    except PipelineStepFailed as error:
        notes = "".join(f" {note}" for note in getattr(error, "__notes__", ()))
        sys.stderr.write(
            f"Load of workspace {workspace!r} failed in the {error.step} step:"
            f" {_root_cause(error)}{notes}\n"
        )
        return 1
    stats, rows = report.stats, {**report.live_rows, **governance.rows}

    destination = pipeline.destination.destination_name
    if as_json:
        summary = {
            "workspace": workspace,
            "destination": destination,
            "dataset": pipeline.dataset_name,
            "rows": rows,
            "requests": stats.as_dict(),
        }
        sys.stdout.write(json.dumps(summary) + "\n")
        return 0
    sys.stdout.write(
        f"Loaded workspace {workspace} into {destination} dataset {pipeline.dataset_name}:\n"
    )
    for table, count in report.live_rows.items():
        sys.stdout.write(f"  {table:<22} {count:>8} live rows\n")
    for table, count in governance.rows.items():
        sys.stdout.write(f"  {table:<22} {count:>8} rows\n")
    agents = stats.agents
    sys.stdout.write(
        f"Agents: {agents.new} new, {agents.changed} changed, {agents.unchanged} unchanged,"
        f" {agents.deleted} deleted\n"
    )
    sys.stdout.write(f"API requests: {stats.total} ({stats.retried} retried)\n")
    for endpoint, count in stats.as_dict()["by_endpoint"].items():
        sys.stdout.write(f"  {endpoint:<42} {count:>6}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
