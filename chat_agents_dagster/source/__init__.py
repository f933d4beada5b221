"""The dlt layer: Mistral's Agents API as a dlt source. Imports nothing from Dagster."""

from chat_agents_dagster.source.api import ApiAuthError, ApiNotFoundError, RequestStats
from chat_agents_dagster.source.pipeline import make_pipeline
from chat_agents_dagster.source.resources import ChatAgentsConfigError, chat_agents_source

__all__ = [
    "ApiAuthError",
    "ApiNotFoundError",
    "ChatAgentsConfigError",
    "RequestStats",
    "chat_agents_source",
    "make_pipeline",
]
