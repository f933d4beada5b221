"""The dlt layer: Mistral's Agents API as a dlt source. Imports nothing from Dagster.

These are its public names; the Dagster layer imports nothing else from this package (a ruff
rule, TID251, holds it to that).
"""

from chat_agents_dagster.source.api import ApiAuthError, ApiNotFoundError, api_outage
from chat_agents_dagster.source.configuration import (
    WORKSPACES_VARIABLE,
    ChatAgentsConfigError,
    configured_workspaces,
)
from chat_agents_dagster.source.governance.derive import (
    GOVERNANCE,
    GovernanceReport,
    run_governance,
)
from chat_agents_dagster.source.governance.version_changes import KINDS as CHANGE_KINDS
from chat_agents_dagster.source.governance.warehouse import GovernanceInputMissingError
from chat_agents_dagster.source.lock import (
    LOCK_TIMEOUT_VARIABLE,
    RunLockTimeoutError,
    one_run_at_a_time,
)
from chat_agents_dagster.source.pipeline import (
    DEFAULT_DUCKDB_FILE,
    DuckDbOutOfMemoryError,
    make_pipeline,
)
from chat_agents_dagster.source.resources import chat_agents_source, source_for_definitions
from chat_agents_dagster.source.run import (
    ALL_TABLES,
    FULL_REFRESH_VARIABLE,
    LoadReport,
    run_load,
)
from chat_agents_dagster.source.stats import RunStats
from chat_agents_dagster.source.versions import governance_code_version, table_code_versions

__all__ = [
    "ALL_TABLES",
    "CHANGE_KINDS",
    "DEFAULT_DUCKDB_FILE",
    "FULL_REFRESH_VARIABLE",
    "GOVERNANCE",
    "LOCK_TIMEOUT_VARIABLE",
    "WORKSPACES_VARIABLE",
    "ApiAuthError",
    "ApiNotFoundError",
    "ChatAgentsConfigError",
    "DuckDbOutOfMemoryError",
    "GovernanceInputMissingError",
    "GovernanceReport",
    "LoadReport",
    "RunLockTimeoutError",
    "RunStats",
    "api_outage",
    "chat_agents_source",
    "configured_workspaces",
    "governance_code_version",
    "make_pipeline",
    "one_run_at_a_time",
    "run_governance",
    "run_load",
    "source_for_definitions",
    "table_code_versions",
]
