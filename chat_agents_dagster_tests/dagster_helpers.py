"""Running the code location's job and checks in-process, as the tests' Dagster harness."""

from typing import Any

import dagster as dg

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.deployment import DeploymentSettings

CHECKS_ONLY = dg.define_asset_job("checks_only", selection=dg.AssetSelection.all_asset_checks())


def definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        build_definitions(DeploymentSettings()), dg.Definitions(jobs=[CHECKS_ONLY])
    )


FULL_REFRESH: dict[str, Any] = {"ops": {"chat_agents_load": {"config": {"full_refresh": True}}}}


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job: str = "chat_agents_job",
    *,
    tables: list[str] | None = None,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """A run of `job` (of only the assets of `tables`, and their checks, if given), as the UI's
    Materialize launches it."""
    selection = None if tables is None else [dg.AssetKey(["chat_agents_data", t]) for t in tables]
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
        run_config=run_config or {},
    )


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
