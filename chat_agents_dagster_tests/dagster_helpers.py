"""Running the code location's job and checks in-process, as the tests' Dagster harness."""

import dagster as dg

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.deployment import DeploymentSettings

CHECKS_ONLY = dg.define_asset_job("checks_only", selection=dg.AssetSelection.all_asset_checks())


def definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        build_definitions(DeploymentSettings()), dg.Definitions(jobs=[CHECKS_ONLY])
    )


def run_job(
    defs: dg.Definitions, instance: dg.DagsterInstance, job: str = "chat_agents_job"
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Table name -> metadata values of its materialization in this run."""
    return {
        event.asset_key.path[-1]: {name: value.value for name, value in event.metadata.items()}
        for event in result.asset_materializations_for_node("chat_agents_load")
    }


def check_results(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (evaluation.asset_key.path[-1], evaluation.check_name): evaluation
        for evaluation in result.get_asset_check_evaluations()
    }
