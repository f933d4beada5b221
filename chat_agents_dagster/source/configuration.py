"""The source's settings, checked when a run starts (never when the source is built), with errors
that name the setting to change."""

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationException

DEFAULT_BASE_URL = "https://api.mistral.ai/v1"

# The settings that can hold the API key, named in every error that is about the key.
API_KEY_SETTINGS = (
    "[sources.chat_agents_source] api_key in .dlt/secrets.toml",
    "the environment variable SOURCES__CHAT_AGENTS_SOURCE__API_KEY",
    "MISTRAL_API_KEY",
)

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


def resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("MISTRAL_API_KEY")
    if not key:
        raise ChatAgentsConfigError(
            "No Mistral API key is set. Put it in "
            + ", or ".join(API_KEY_SETTINGS[:2])
            + f" ({API_KEY_SETTINGS[2]} is read too)."
        )
    return key
