"""A Mistral-compatible Agents API server for tests and demos (standard library only)."""

from chat_agents_dagster.sandbox.config import SandboxConfig
from chat_agents_dagster.sandbox.server import SandboxServer
from chat_agents_dagster.sandbox.world import World

__all__ = ["SandboxConfig", "SandboxServer", "World"]
