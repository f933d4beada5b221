"""The source's settings, checked when a run starts (never when the source is built), with errors
that name the setting to change."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationException

from chat_agents_dagster.tables import DEFAULT_WORKSPACE

DEFAULT_BASE_URL = "https://api.mistral.ai/v1"

# The settings that can hold the default workspace's API key, named in every error about it.
API_KEY_SETTINGS = (
    "[sources.chat_agents_source] api_key in .dlt/secrets.toml",
    "the environment variable SOURCES__CHAT_AGENTS_SOURCE__API_KEY",
    "MISTRAL_API_KEY",
)
# A workspace's name: in every key of every table, in a pipeline's name and in Dagster's
# partition keys, so short and plain.
WORKSPACE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Page-size bounds from Mistral's OpenAPI document. A version listing asks for the largest size, so
# that it costs as few requests as the API permits. The agents listing asks for less: each page is
# held while its agents' children are fetched, so larger pages cost memory for few requests saved
# (benchmarks/README.md, "Performance log").
AGENTS_PAGE_SIZE_MAX = 1000
AGENTS_PAGE_SIZE = 100
VERSIONS_PAGE_SIZE_MAX = 100


class ChatAgentsConfigError(ValueError):
    """A setting is missing or out of range; raised before any request is made."""


def setting_error(name: str, problem: str) -> ChatAgentsConfigError:
    env = f"SOURCES__CHAT_AGENTS_SOURCE__{name.upper()}"
    return ChatAgentsConfigError(
        f"{problem}. Change [sources.chat_agents_source] {name} in .dlt/config.toml or {env}."
    )


def destination_type() -> str:
    """dlt's `destination_type` setting, DuckDB when unset, checked before anything runs: an
    unknown name would otherwise fail deep inside dlt without naming the setting."""
    name: str = dlt.config.get("destination_type", str) or "duckdb"
    try:
        Destination.from_reference(name)
    except DestinationException as error:
        raise ChatAgentsConfigError(
            f"destination_type is {name!r}, which is no dlt destination (duckdb, postgres,"
            " bigquery, snowflake, databricks, ..., or a [destination.<name>] section with its own"
            " destination_type). Change destination_type in .dlt/config.toml or DESTINATION_TYPE."
        ) from error
    return name


def _without_credentials(url: str) -> str:
    """A URL as an error may show it: user and password, if someone put them there, hidden."""
    return re.sub(r"//[^/?#]*@", "//***@", url)


def _url_problem(url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "is not an http(s) URL"
    if any(character.isspace() for character in url):
        return "contains white space"
    try:
        parsed.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if parsed.query or parsed.fragment:
        return "has a query or fragment; give the API root, such as https://api.mistral.ai/v1"
    return None


@dataclass(frozen=True)
class SourceSettings:
    base_url: str
    agents_page_size: int
    versions_page_size: int
    requests_per_second: float

    def check(self) -> None:
        problem = _url_problem(self.base_url)
        if problem is not None:
            shown = _without_credentials(self.base_url)
            raise setting_error("base_url", f"base_url {shown!r} {problem}")
        for name, value, maximum in (
            ("agents_page_size", self.agents_page_size, AGENTS_PAGE_SIZE_MAX),
            ("versions_page_size", self.versions_page_size, VERSIONS_PAGE_SIZE_MAX),
        ):
            if not 1 <= value <= maximum:
                raise setting_error(name, f"{name} is {value}; the API accepts 1 to {maximum}")
        if self.requests_per_second < 0:
            raise setting_error(
                "requests_per_second",
                f"requests_per_second is {self.requests_per_second}; use 0 (no limit) or more",
            )


WORKSPACES_VARIABLE = "CHAT_AGENTS_WORKSPACES"


def configured_workspaces(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The workspaces to load: `CHAT_AGENTS_WORKSPACES`, comma-separated short names, the default
    one alone when unset. An environment variable rather than dlt configuration, because a
    Dagster code location partitions its assets by these names when it loads, and resolves no
    dlt configuration then; each workspace's key and settings are dlt configuration."""
    raw = env.get(WORKSPACES_VARIABLE, "").strip()
    if not raw:
        return (DEFAULT_WORKSPACE,)
    names = tuple(name.strip() for name in raw.split(","))
    for name in names:
        check_workspace_name(name, f"{WORKSPACES_VARIABLE}={raw!r}")
    if len(set(names)) != len(names):
        raise ChatAgentsConfigError(f"{WORKSPACES_VARIABLE}={raw!r} names a workspace twice.")
    return names


def check_workspace_name(name: str, where: str) -> str:
    if not WORKSPACE_NAME.fullmatch(name):
        raise ChatAgentsConfigError(
            f"{where}: workspace name {name!r} must be a lowercase letter followed by at most 39"
            " lowercase letters, digits or underscores (e.g. eu_prod)."
        )
    return name


def workspace_section(workspace: str) -> str:
    """Where a workspace other than the default one is configured (config and secrets)."""
    return f"sources.chat_agents_source.workspaces.{workspace}"


def key_settings(workspace: str) -> tuple[str, ...]:
    """The settings that can hold `workspace`'s API key, for errors about it."""
    if workspace == DEFAULT_WORKSPACE:
        return API_KEY_SETTINGS
    section = workspace_section(workspace)
    return (
        f"[{section}] api_key in .dlt/secrets.toml",
        f"the environment variable {section.replace('.', '__').upper()}__API_KEY",
    )


def workspace_arguments(workspace: str) -> dict[str, Any]:
    """The source's arguments for a workspace other than the default one: its key (required: a
    key belongs to one workspace, so none is shared) and, where set, its own `base_url` and
    `requests_per_second`; the rest is the source's own configuration."""
    if workspace == DEFAULT_WORKSPACE:
        return {}
    section = workspace_section(workspace)
    arguments: dict[str, Any] = {"api_key": dlt.secrets.get(f"{section}.api_key")}
    if not arguments["api_key"]:
        raise ChatAgentsConfigError(
            f"No Mistral API key is set for workspace {workspace!r}. Put it in "
            + " or ".join(key_settings(workspace))
            + "."
        )
    for name in ("base_url", "requests_per_second"):
        value: Any = dlt.config.get(f"{section}.{name}")
        if value is not None:
            arguments[name] = value
    return arguments


def resolve_key(api_key: str | None, workspace: str = DEFAULT_WORKSPACE) -> str:
    key = api_key or (os.environ.get("MISTRAL_API_KEY") if workspace == DEFAULT_WORKSPACE else None)
    if not key:
        settings = key_settings(workspace)
        raise ChatAgentsConfigError(
            f"No Mistral API key is set for workspace {workspace!r}. Put it in "
            + ", or ".join(settings[:2])
            + (f" ({settings[2]} is read too)." if len(settings) > 2 else ".")
        )
    return key
