"""Running the code location's job and checks in-process, as the tests' Dagster harness."""

import time
from dataclasses import replace
from typing import Any

import dagster as dg

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.checks import CHECKS
from chat_agents_dagster.defs.deployment import DeploymentSettings
from chat_agents_dagster.defs.governance import GOVERNANCE_CHECKS
from chat_agents_dagster.defs.translator import MISTRAL_AGENTS_API_KEY, table_asset_key
from chat_agents_dagster.tables import GOVERNANCE_TABLES, TABLES

# Every check the code defines: the loaded tables' and the governance tables'.
CHECK_SPECS = [spec for spec, _ in (*CHECKS, *GOVERNANCE_CHECKS)]


class Clock:
    """A sensor's clock a test sets: `now` starts at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def materialize_all(instance: dg.DagsterInstance) -> None:
    """Every table materialized now, as a run would record it (no partition)."""
    for table in (*TABLES, *GOVERNANCE_TABLES):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=table_asset_key(table.name))
        )


CHECKS_ONLY = dg.define_asset_job("checks_only", selection=dg.AssetSelection.all_asset_checks())


def definitions(**settings: Any) -> dg.Definitions:
    """The code location with the shipped settings, but for `settings` and for API outages,
    which fail the run at once: the shipped 15-minute waits would stall every test that makes
    the API fail (the outage tests ask for retries themselves)."""
    deployment = replace(DeploymentSettings(), **{"outage_retries": 0, **settings})
    return dg.Definitions.merge(build_definitions(deployment), dg.Definitions(jobs=[CHECKS_ONLY]))


FULL_REFRESH: dict[str, Any] = {"ops": {"chat_agents_load": {"config": {"full_refresh": True}}}}
# The load's and the governance tables' full refresh, as chat-agents-load --full-refresh does.
FULL_REFRESH_ALL: dict[str, Any] = {
    "ops": {**FULL_REFRESH["ops"], "chat_agents_governance": {"config": {"full_refresh": True}}}
}


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job: str = "chat_agents_job",
    *,
    tables: list[str] | None = None,
    run_config: dict[str, Any] | None = None,
    partition: str | None = None,
) -> dg.ExecuteInProcessResult:
    """A run of `job` (of only the assets of `tables`, and their checks, if given; of one
    workspace's partition, if given), as the UI's Materialize launches it."""
    selection = None if tables is None else [dg.AssetKey(["chat_agents_data", t]) for t in tables]
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
        run_config=run_config or {},
        partition_key=partition,
    )


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Table name -> metadata values of its materialization in this run."""
    return {
        event.asset_key.path[-1]: {name: value.value for name, value in event.metadata.items()}
        for event in result.asset_materializations_for_node("chat_agents_load")
    }


def api_observations(result: dg.ExecuteInProcessResult) -> list[dict[str, object]]:
    """Metadata values of each observation of the Mistral API asset in this run, in order, with
    the data version it recorded under "data_version" (None when it recorded none)."""
    observed = []
    for event in result.all_events:
        if event.event_type_value != "ASSET_OBSERVATION":
            continue
        observation = event.asset_observation_data.asset_observation
        if observation.asset_key != MISTRAL_AGENTS_API_KEY:
            continue
        values: dict[str, object] = {
            name: value.value for name, value in observation.metadata.items()
        }
        values["data_version"] = observation.tags.get("dagster/data_version")
        observed.append(values)
    return observed


def check_results(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (evaluation.asset_key.path[-1], evaluation.check_name): evaluation
        for evaluation in result.get_asset_check_evaluations()
    }
