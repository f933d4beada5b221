"""The source's settings, checked when a run starts (never when the source is built), with errors
that name the setting to change."""

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from chat_agents_dagster.settings import (
    AGENTS_PAGE_SIZE_MAX,
    API_KEY_SETTINGS,
    VERSIONS_PAGE_SIZE_MAX,
)


class ChatAgentsConfigError(ValueError):
    """A setting is missing or out of range; raised before any request is made."""


def setting_error(name: str, problem: str) -> ChatAgentsConfigError:
    env = f"SOURCES__CHAT_AGENTS_SOURCE__{name.upper()}"
    return ChatAgentsConfigError(
        f"{problem}. Change [sources.chat_agents_source] {name} in .dlt/config.toml or {env}."
    )


@dataclass(frozen=True)
class SourceSettings:
    base_url: str
    agents_page_size: int
    versions_page_size: int
    requests_per_second: float

    def check(self) -> None:
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise setting_error("base_url", f"base_url {self.base_url!r} is not an http(s) URL")
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
