"""The dlt source `chat_agents_source`: five tables from Mistral's Agents API.

Dagster-free by design (the Dagster layer imports this, never the reverse). Building the source
resolves no secret and makes no request; the key is looked up, and the settings checked, when the
first resource starts, so a code location can build it with no key at all.
"""

import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.extract import DltResource

from chat_agents_dagster.settings import (
    AGENTS_PAGE_SIZE_MAX,
    API_KEY_SETTINGS,
    DEFAULT_BASE_URL,
    SOURCE_NAME,
    TABLES_BY_NAME,
    VERSIONS_PAGE_SIZE_MAX,
)
from chat_agents_dagster.source.api import AgentsApi, ApiNotFoundError, RequestStats
from chat_agents_dagster.source.rows import (
    agent_columns,
    agent_nested_hints,
    child_row,
    shape_agent,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ChatAgentsConfigError(ValueError):
    """A setting is missing or out of range; raised before any request is made."""


def _setting_error(name: str, problem: str) -> ChatAgentsConfigError:
    env = f"SOURCES__CHAT_AGENTS_SOURCE__{name.upper()}"
    return ChatAgentsConfigError(
        f"{problem}. Change [sources.chat_agents_source] {name} in .dlt/config.toml or {env}."
    )


def _check_page_size(name: str, value: int, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise _setting_error(name, f"{name} is {value}; the API accepts 1 to {maximum}")


def _resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("MISTRAL_API_KEY")
    if not key:
        raise ChatAgentsConfigError(
            "No Mistral API key is set. Put it in "
            + ", or ".join(API_KEY_SETTINGS[:2])
            + f" ({API_KEY_SETTINGS[2]} is read too)."
        )
    return key


def _unless_gone(what: str, agent_id: str, fetch: Callable[..., T], *args: Any) -> T | None:
    """An agent deleted between the listing and this request answers 404: skip it, do not fail."""
    try:
        return fetch(agent_id, *args)
    except ApiNotFoundError:
        logger.warning("Agent %s disappeared during the run; its %s is skipped", agent_id, what)
        return None


def _spec(name: str) -> dict[str, Any]:
    table = TABLES_BY_NAME[name]
    return {"name": table.name, "primary_key": list(table.primary_key)}


def _agent_hints(*, versions_as_json: bool) -> dict[str, Any]:
    return {
        "write_disposition": "replace",
        "columns": agent_columns(versions_as_json=versions_as_json),
        "nested_hints": agent_nested_hints(),
    }


@dlt.source(name=SOURCE_NAME, max_table_nesting=2)
def chat_agents_source(
    api_key: TSecretStrValue | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    agents_page_size: int = AGENTS_PAGE_SIZE_MAX,
    versions_page_size: int = VERSIONS_PAGE_SIZE_MAX,
    request_stats: RequestStats | None = None,
) -> Iterator[DltResource]:
    """Every agent, its detail, versions, version details and aliases.

    `request_stats`, when given, receives the count of every answer the API gave during the run.
    """
    stats = request_stats if request_stats is not None else RequestStats()
    lock = threading.Lock()
    opened: list[AgentsApi] = []

    def api() -> AgentsApi:
        with lock:
            if not opened:
                parsed = urlparse(base_url)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    raise _setting_error("base_url", f"base_url {base_url!r} is not an http(s) URL")
                _check_page_size("agents_page_size", agents_page_size, AGENTS_PAGE_SIZE_MAX)
                _check_page_size("versions_page_size", versions_page_size, VERSIONS_PAGE_SIZE_MAX)
                opened.append(AgentsApi(base_url.rstrip("/"), _resolve_key(api_key), stats))
            return opened[0]

    @dlt.resource(**_spec("agents"), **_agent_hints(versions_as_json=False))
    def agents() -> Iterator[dict[str, Any]]:
        # One item at a time, so that dlt fans the child requests of each agent out to its pool.
        for page in api().agent_pages(agents_page_size):
            yield from (shape_agent(agent) for agent in page)

    @dlt.transformer(
        data_from=agents,
        **_spec("agent_detail"),
        **_agent_hints(versions_as_json=True),
        parallelized=True,
    )
    def agent_detail(agent: dict[str, Any]) -> list[dict[str, Any]]:
        detail = _unless_gone("detail", agent["id"], api().agent)
        return [] if detail is None else [shape_agent(detail)]

    @dlt.transformer(
        data_from=agents,
        **_spec("agent_versions"),
        **_agent_hints(versions_as_json=True),
        parallelized=True,
    )
    def agent_versions(agent: dict[str, Any]) -> list[dict[str, Any]]:
        agent_id = agent["id"]
        listed = agent.get("versions") or []
        rows = (
            _unless_gone("versions", agent_id, api().versions, len(listed), versions_page_size)
            or []
        )
        returned = {row.get("version") for row in rows}
        if rows and returned != set(listed):
            logger.warning(
                "Agent %s lists versions %s but the version listing returned %s",
                agent_id,
                sorted(listed),
                sorted(returned, key=str),
            )
        return [child_row(agent_id, row) for row in rows]

    @dlt.transformer(
        data_from=agents,
        **_spec("agent_aliases"),
        write_disposition="replace",
        parallelized=True,
    )
    def agent_aliases(agent: dict[str, Any]) -> list[dict[str, Any]]:
        agent_id = agent["id"]
        rows = _unless_gone("aliases", agent_id, api().aliases) or []
        return [child_row(agent_id, row) for row in rows]

    @dlt.transformer(
        data_from=agent_versions,
        **_spec("agent_version_detail"),
        **_agent_hints(versions_as_json=True),
        parallelized=True,
    )
    def agent_version_detail(versions: Any) -> list[dict[str, Any]]:
        rows = versions if isinstance(versions, list) else [versions]
        details: list[dict[str, Any]] = []
        for row in rows:
            agent_id, number = row["agent_id"], row["version"]
            detail = _unless_gone(f"version {number}", agent_id, api().version, number)
            if detail is not None:
                details.append(child_row(agent_id, detail))
        return details

    yield agents
    yield agent_detail
    yield agent_versions
    yield agent_aliases
    yield agent_version_detail
