"""`python -m chat_agents_dagster_tests.partition_run WORKSPACE`: one run of chat_agents_job for
a workspace's partition, in a process of its own as a run worker is, with the code location as
the environment configures it; prints what a test needs to judge the run, as JSON."""

import json
import sys

import dagster as dg

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.deployment import DeploymentSettings


def main(workspace: str) -> int:
    defs = build_definitions(DeploymentSettings.from_env())
    result = defs.resolve_job_def("chat_agents_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, partition_key=workspace
    )
    failed_checks = [
        f"{e.asset_key.to_user_string()} {e.check_name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    errors = [
        event.step_failure_data.error.to_string()[-2000:]
        for event in result.get_step_failure_events()
        if event.step_failure_data.error
    ]
    print(json.dumps({"success": result.success, "failed_checks": failed_checks, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
