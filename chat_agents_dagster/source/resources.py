"""The dlt source `chat_agents_source`: five tables from Mistral's Agents API, loaded by merge.

Dagster-free by design (the Dagster layer imports this, never the reverse). Building the source
resolves no secret and makes no request; the key is looked up, and the settings checked, when the
first resource starts, so a code location can build it with no key at all.

Cost follows change: every run lists the agents (one request per 100) and fetches aliases; an
agent's detail only when it is new or its `updated_at` or `versions` changed; a version (listing
row or detail) only once, as versions never change. What was loaded is kept in dlt's source state
(see state.py). Child requests run in dlt's extract pool (`[sources.chat_agents_source.extract]
workers`), paced by `requests_per_second`.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.extract import DltResource

from chat_agents_dagster.settings import (
    AGENTS_PAGE_SIZE,
    DEFAULT_BASE_URL,
    SOURCE_NAME,
    TABLES_BY_NAME,
    VERSIONS_PAGE_SIZE_MAX,
)
from chat_agents_dagster.source.api import AgentsApi, ApiNotFoundError
from chat_agents_dagster.source.configuration import SourceSettings, resolve_key
from chat_agents_dagster.source.pacing import Pacer
from chat_agents_dagster.source.rows import agent_columns, agent_nested_hints, child_row, live
from chat_agents_dagster.source.state import (
    VERSION_DETAIL,
    VERSIONS,
    LoadState,
    fingerprint,
)
from chat_agents_dagster.source.stats import RunStats

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _unless_gone(what: str, agent_id: str, fetch: Callable[..., T], *args: Any) -> T | None:
    """An agent deleted between the listing and this request answers 404: skip it, do not fail."""
    try:
        return fetch(agent_id, *args)
    except ApiNotFoundError:
        logger.warning("Agent %s disappeared during the run; its %s is skipped", agent_id, what)
        return None


def _hints(name: str, *, agent_rows: bool = True) -> dict[str, Any]:
    table = TABLES_BY_NAME[name]
    hints: dict[str, Any] = {
        "name": table.name,
        "primary_key": list(table.primary_key),
        # Merge on the primary key: rows of unchanged agents and loaded versions stay as they are.
        "write_disposition": "merge",
        "columns": agent_columns(versions_as_json=name != "agents") if agent_rows else {},
    }
    hints["columns"]["deleted_at"] = {
        "name": "deleted_at",
        "data_type": "timestamp",
        "nullable": True,
    }
    if agent_rows:
        hints["nested_hints"] = agent_nested_hints()
    return hints


class _Run:
    """Per-run connection and state, opened by the `agents` resource when extraction starts (in
    the main thread, where dlt's source state is available) and shared with the child resources
    running in dlt's worker threads."""

    def __init__(self, settings: SourceSettings, api_key: str | None, stats: RunStats) -> None:
        self.settings, self._api_key, self.stats = settings, api_key, stats
        self._lock = threading.Lock()
        self._api: AgentsApi | None = None
        self._state: LoadState | None = None

    def open(self, full_refresh: bool) -> None:
        with self._lock:
            self.settings.check()
            pacer = Pacer(self.settings.requests_per_second)
            self._api = AgentsApi(
                self.settings.base_url.rstrip("/"), resolve_key(self._api_key), self.stats, pacer
            )
            self._state = LoadState(dlt.current.source_state(), full_refresh, self.stats.agents)

    @property
    def api(self) -> AgentsApi:
        assert self._api is not None, "the agents resource opens the run"
        return self._api

    @property
    def state(self) -> LoadState:
        assert self._state is not None, "the agents resource opens the run"
        return self._state


@dlt.source(name=SOURCE_NAME, max_table_nesting=2, root_key=True)
def chat_agents_source(
    api_key: TSecretStrValue | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    agents_page_size: int = AGENTS_PAGE_SIZE,
    versions_page_size: int = VERSIONS_PAGE_SIZE_MAX,
    requests_per_second: float = 0.0,
    aliases_every_run: bool = True,
    full_refresh: bool = False,
    run_stats: RunStats | None = None,
) -> Iterator[DltResource]:
    """Every agent, its detail, versions, version details and aliases.

    `requests_per_second` paces all requests (0: no limit). `aliases_every_run=False` fetches
    aliases only for new or changed agents (an alias can be re-pointed without changing the
    agent, so the default fetches them every run). `full_refresh` ignores what earlier runs
    loaded. `run_stats`, when given, receives the run's request and agent counts.
    """
    settings = SourceSettings(base_url, agents_page_size, versions_page_size, requests_per_second)
    run = _Run(settings, api_key, run_stats if run_stats is not None else RunStats())

    @dlt.resource(**_hints("agents"))
    def agents() -> Iterator[dict[str, Any]]:
        run.open(full_refresh)
        listed: set[str] = set()
        # One item at a time, so that dlt fans each agent's child requests out to its pool.
        for page in run.api.agent_pages(agents_page_size):
            run.stats.rows_from_api("agents", len(page))
            for agent in page:
                listed.add(agent["id"])
                run.state.saw(agent)
                yield live(agent)
        gone = run.state.listing_complete(listed)
        counts = run.state.counts
        logger.info(
            "Listed %d agents: %d new, %d changed, %d unchanged, %d no longer listed%s",
            len(listed),
            counts.new,
            counts.changed,
            counts.unchanged,
            counts.deleted,
            f" ({', '.join(sorted(gone)[:10])}{', ...' if len(gone) > 10 else ''})" if gone else "",
        )

    @dlt.transformer(data_from=agents, **_hints("agent_detail"), parallelized=True)
    def agent_detail(agent: dict[str, Any]) -> list[dict[str, Any]]:
        if run.state.detail_is_current(agent):
            return []
        detail = _unless_gone("detail", agent["id"], run.api.agent)
        if detail is None:
            return []
        run.state.detail_loaded(agent)
        run.stats.rows_from_api("agent_detail", 1)
        return [live(detail)]

    @dlt.transformer(data_from=agents, **_hints("agent_versions"), parallelized=True)
    def agent_versions(agent: dict[str, Any]) -> list[dict[str, Any]]:
        agent_id, listed = agent["id"], agent.get("versions") or []
        missing = set(run.state.versions_missing(VERSIONS, agent))
        if not missing:
            return []
        page_size = settings.versions_page_size
        rows = _unless_gone("versions", agent_id, run.api.versions, len(listed), page_size) or []
        returned = {row.get("version") for row in rows}
        if rows and returned != set(listed):
            logger.warning(
                "Agent %s lists versions %s but the version listing returned %s",
                agent_id,
                sorted(listed),
                sorted(returned, key=str),
            )
        new = [child_row(agent_id, row) for row in rows if row.get("version") in missing]
        run.state.versions_loaded(VERSIONS, agent_id, [row["version"] for row in new])
        run.stats.rows_from_api("agent_versions", len(new))
        return new

    @dlt.transformer(data_from=agents, **_hints("agent_version_detail"), parallelized=True)
    def agent_version_detail(agent: dict[str, Any]) -> list[dict[str, Any]]:
        # Fed by `agents` (whose `versions` list names every version) rather than by
        # agent_versions, so that each table decides from its own state what it still needs.
        agent_id = agent["id"]
        details = []
        for number in run.state.versions_missing(VERSION_DETAIL, agent):
            detail = _unless_gone(f"version {number}", agent_id, run.api.version, number)
            if detail is not None:
                details.append(child_row(agent_id, detail))
        run.state.versions_loaded(VERSION_DETAIL, agent_id, [row["version"] for row in details])
        run.stats.rows_from_api("agent_version_detail", len(details))
        return details

    @dlt.transformer(
        data_from=agents, **_hints("agent_aliases", agent_rows=False), parallelized=True
    )
    def agent_aliases(agent: dict[str, Any]) -> list[dict[str, Any]]:
        agent_id = agent["id"]
        before = run.state.aliases_before(agent_id)
        if not aliases_every_run and before and before.get("fingerprint") == fingerprint(agent):
            return []
        current = _unless_gone("aliases", agent_id, run.api.aliases)
        if current is None:
            return []
        run.state.aliases_loaded(agent_id, fingerprint(agent), current)
        run.stats.rows_from_api("agent_aliases", len(current))
        names = {alias["alias"] for alias in current}
        now = datetime.now(UTC)
        # An alias that disappeared stays, marked deleted: the state kept what it pointed at.
        tombstones = [
            {
                "agent_id": agent_id,
                "alias": name,
                "version": version,
                "created_at": created_at,
                "updated_at": updated_at,
                "deleted_at": now,
            }
            for name, (version, created_at, updated_at) in before.get("aliases", {}).items()
            if name not in names
        ]
        return [child_row(agent_id, alias) for alias in current] + tombstones

    yield agents
    yield agent_detail
    yield agent_versions
    yield agent_aliases
    yield agent_version_detail
