"""The dlt layer: Mistral's Agents API as a dlt source. Imports nothing from Dagster."""

from chat_agents_dagster.source.api import ApiAuthError, ApiNotFoundError
from chat_agents_dagster.source.configuration import ChatAgentsConfigError
from chat_agents_dagster.source.pipeline import after_load, make_pipeline, run_load
from chat_agents_dagster.source.resources import chat_agents_source
from chat_agents_dagster.source.stats import RunStats

__all__ = [
    "ApiAuthError",
    "ApiNotFoundError",
    "ChatAgentsConfigError",
    "RunStats",
    "after_load",
    "chat_agents_source",
    "make_pipeline",
    "run_load",
]
