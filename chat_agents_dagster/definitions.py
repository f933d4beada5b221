"""The code location: `defs` is what `dagster dev -w workspace.yaml` and deployments load.

Loading needs no API key and makes no request: the key is read when a run starts.
"""

import dagster as dg
from dagster_dlt import DagsterDltResource

from chat_agents_dagster.assets import build_chat_agents_assets
from chat_agents_dagster.checks import chat_agents_checks
from chat_agents_dagster.deployment import DeploymentSettings
from chat_agents_dagster.schedules import build_nightly_schedule, chat_agents_job
from chat_agents_dagster.sensors import build_freshness_sensor
from chat_agents_dagster.settings import TABLES
from chat_agents_dagster.translator import (
    MISTRAL_AGENTS_API,
    ChatAgentsTranslator,
    table_asset_key,
)


def build_definitions(settings: DeploymentSettings) -> dg.Definitions:
    # Freshness is one global policy, applied here through the translator to every table.
    freshness = dg.FreshnessPolicy.time_window(fail_window=settings.freshness_window)
    assets = build_chat_agents_assets(ChatAgentsTranslator(freshness_policy=freshness))
    return dg.Definitions(
        assets=[MISTRAL_AGENTS_API, assets],
        asset_checks=[chat_agents_checks],
        jobs=[chat_agents_job],
        schedules=[build_nightly_schedule(settings)],
        sensors=[
            build_freshness_sensor(
                chat_agents_job.name, [table_asset_key(t.name) for t in TABLES], settings
            )
        ],
        resources={"dlt": DagsterDltResource()},
    )


defs = build_definitions(DeploymentSettings.from_env())
