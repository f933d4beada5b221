"""The code location: `defs` is what `dagster dev -w workspace.yaml` and deployments load.

Loading needs no API key and makes no request: the key is read when a run starts.
"""

import gc

import dagster as dg
from dagster_dlt import DagsterDltResource

from chat_agents_dagster.defs.alerts import RESOURCE_KEY, alerts_resource, build_alert_sensors
from chat_agents_dagster.defs.assets import build_chat_agents_assets, workspace_partitions
from chat_agents_dagster.defs.checks import chat_agents_checks
from chat_agents_dagster.defs.deployment import IN_PROCESS, DeploymentSettings
from chat_agents_dagster.defs.governance import (
    build_governance_assets,
    chat_agents_governance_checks,
    governance_asset_keys,
)
from chat_agents_dagster.defs.schedules import build_chat_agents_job, build_nightly_schedule
from chat_agents_dagster.defs.sensors import build_freshness_sensor
from chat_agents_dagster.defs.translator import (
    ChatAgentsTranslator,
    mistral_agents_api,
    table_asset_key,
)
from chat_agents_dagster.tables import TABLES


def build_definitions(settings: DeploymentSettings) -> dg.Definitions:
    # Freshness is one global policy, applied to every table: through the translator to the
    # loaded ones, directly to the governance ones.
    freshness = dg.FreshnessPolicy.time_window(fail_window=settings.freshness_window)
    translator = ChatAgentsTranslator(freshness_policy=freshness, owners=settings.owners)
    assets = build_chat_agents_assets(translator, settings)
    job = build_chat_agents_job(settings)
    return dg.Definitions(
        assets=[
            mistral_agents_api(settings.owners, workspace_partitions(settings)),
            assets,
            build_governance_assets(settings, freshness),
        ],
        asset_checks=[chat_agents_checks, chat_agents_governance_checks],
        jobs=[job],
        schedules=[build_nightly_schedule(settings, job)],
        sensors=[
            build_freshness_sensor(
                job.name,
                [*(table_asset_key(t.name) for t in TABLES), *governance_asset_keys()],
                settings,
            ),
            *build_alert_sensors(settings.alerts),
        ],
        resources={"dlt": DagsterDltResource(), RESOURCE_KEY: alerts_resource(settings.alerts)},
        # The default of every job of the location, the asset jobs the UI builds included.
        executor=(
            dg.in_process_executor if settings.executor == IN_PROCESS else dg.multiprocess_executor
        ),
    )


defs = build_definitions(DeploymentSettings.from_env())

# What the location has imported and built lives as long as the process (a code server, or a run
# worker that loads the location once and runs once). Moved out of the cyclic collector's view, it
# is no longer walked by every full collection during a run, nor by the interpreter's at exit.
# Reference counting still frees what is dropped; only a frozen cycle would stay, and the modules
# and definitions are not garbage while the process lives.
gc.freeze()
