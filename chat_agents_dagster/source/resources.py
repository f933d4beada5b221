"""The dlt source `chat_agents_source`: five tables from Mistral's Agents API, loaded by merge.

Dagster-free by design (the Dagster layer imports this, never the reverse). Building the source
resolves no secret and makes no request; the key is looked up, and the settings checked, when the
first resource starts, so a code location can build it with no key at all.

Cost follows change: every run lists the agents (one request per 100) and fetches aliases; an
agent's detail only when it is new or its `updated_at`, active `version` or `versions` changed; a
version (listing row or detail) only once, as versions never change. What was loaded is what the
warehouse holds, read when the run starts (record.py). Child requests run in dlt's extract pool
(`[sources.chat_agents_source.extract] workers`), paced by `requests_per_second`.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.extract import DltResource, DltSource

from chat_agents_dagster.source.api import AgentsApi, ApiNotFoundError
from chat_agents_dagster.source.configuration import (
    AGENTS_PAGE_SIZE,
    DEFAULT_BASE_URL,
    VERSIONS_PAGE_SIZE_MAX,
    SourceSettings,
    key_settings,
    resolve_key,
)
from chat_agents_dagster.source.pacing import Pacer
from chat_agents_dagster.source.record import WarehouseRecord, fingerprint, read_record
from chat_agents_dagster.source.rows import (
    agent_columns,
    agent_nested_hints,
    child_row,
    current_row,
    record_columns,
)
from chat_agents_dagster.source.stats import RunStats
from chat_agents_dagster.tables import DEFAULT_WORKSPACE, SOURCE_NAME, TABLES_BY_NAME, WORKSPACE

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _unless_gone(
    stats: RunStats, table: str, what: str, agent_id: str, fetch: Callable[..., T], *args: Any
) -> T | None:
    """An agent deleted between the listing and this request answers 404: skip it, do not fail,
    and count it, so that the checks can tell this hole from a loss."""
    try:
        return fetch(agent_id, *args)
    except ApiNotFoundError:
        logger.warning("Agent %s disappeared during the run; its %s is skipped", agent_id, what)
        stats.gone_mid_run(table, agent_id)
        return None


def _hints(name: str, *, agent_rows: bool = True) -> dict[str, Any]:
    table = TABLES_BY_NAME[name]
    columns = agent_columns(versions_as_json=name != "agents") if agent_rows else {}
    hints: dict[str, Any] = {
        "name": table.name,
        "primary_key": list(table.primary_key),
        # Merge on the primary key: rows of unchanged agents and loaded versions stay as they are.
        "write_disposition": "merge",
        # Typed, so that a table that gets no row (an organisation with no agents, or none with
        # an alias) is still created with the columns the record and the checks read.
        "columns": {**columns, **record_columns(name)},
    }
    if agent_rows:
        hints["nested_hints"] = agent_nested_hints()
    return hints


def _is_marker(item: Any) -> bool:
    """dlt's marker that creates a table even with no row (`materialize_table_schema`): the
    `agents` resource yields it after the listing, and every table fed by it hands it on."""
    return isinstance(item, list) and not item


_RECORDS_FORMERLY_IN_STATE = (
    "listing",
    "agent_detail",
    "agent_versions",
    "agent_version_detail",
    "agent_aliases",
)


class _Run:
    """Per-run connection and record, opened by the `agents` resource when extraction starts and
    shared with the child resources running in dlt's worker threads, which only read the
    record."""

    def __init__(
        self,
        settings: SourceSettings,
        api_key: str | None,
        stats: RunStats,
        record: WarehouseRecord | None,
        refresh: frozenset[str],
        empty_table_format: str | None,
        workspace: str,
    ) -> None:
        self.settings, self._api_key, self.stats = settings, api_key, stats
        self.workspace = workspace
        self._given, self._refresh = record, refresh
        self._empty_table_format = empty_table_format
        self._api: AgentsApi | None = None
        self._record: WarehouseRecord | None = None
        self.listed = 0  # agents listed, once the listing is complete

    def open(self) -> None:
        self.settings.check()
        pacer = Pacer(self.settings.requests_per_second)
        self._api = AgentsApi(
            self.settings.base_url.rstrip("/"),
            resolve_key(self._api_key, self.workspace),
            self.stats,
            pacer,
            key_settings(self.workspace),
        )
        record = (
            self._given
            if self._given is not None
            else read_record(dlt.current.pipeline(), self.workspace)
        )
        self._record = record.without(self._refresh)
        # Before the tables were the record, a copy of it lived in the source state (megabytes
        # at 10,000 agents, restored by every run): a warehouse loaded then drops it now.
        state = dlt.current.source_state()
        for key in _RECORDS_FORMERLY_IN_STATE:
            state.pop(key, None)

    @property
    def api(self) -> AgentsApi:
        assert self._api is not None, "the agents resource opens the run"
        return self._api

    @property
    def record(self) -> WarehouseRecord:
        assert self._record is not None, "the agents resource opens the run"
        return self._record

    def creates_tables(self) -> bool:
        """Whether a table has no row yet, so that this run must create it even if it brings
        none (an organisation with no agents, or none with an alias)."""
        return not all(self.record.rows.values())

    def hand_on(self, table: str, marker: Any) -> Any:
        """The marker for a table with no row in the warehouse that may get none this run, in the
        file format that loads an empty file (DuckDB reads an empty JSON lines file as a table of
        one column, "json", and fails). A table of whole agents gets a row for every agent
        listed, and so its rows' format is left alone; `agent_aliases` is small enough that the
        marker may overtake its rows."""
        surely_filled = self.listed > 0 and table != "agent_aliases"
        if self.record.rows[table] or surely_filled or self.stats.api_rows[table]:
            return []
        if self._empty_table_format is None:
            return marker
        return dlt.mark.with_hints(
            marker,
            dlt.mark.make_hints(file_format=self._empty_table_format),  # type: ignore[arg-type]
        )

    def saw(self, agent: dict[str, Any]) -> None:
        """Counts an agent of the listing as new, changed or unchanged since the listing the
        warehouse holds."""
        before = self.record.listing.get(agent["id"])
        now = fingerprint(agent)
        self.stats.listed(agent["id"], now)
        counts = self.stats.agents
        if before is None:
            counts.new += 1
        elif before != now:
            counts.changed += 1
        else:
            counts.unchanged += 1


@dlt.source(name=SOURCE_NAME, max_table_nesting=2, root_key=True)
def chat_agents_source(
    api_key: TSecretStrValue | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    agents_page_size: int = AGENTS_PAGE_SIZE,
    versions_page_size: int = VERSIONS_PAGE_SIZE_MAX,
    requests_per_second: float = 0.0,
    aliases_every_run: bool = True,
    full_refresh_tables: Sequence[str] = (),
    record: WarehouseRecord | None = None,
    empty_table_format: str | None = None,
    run_stats: RunStats | None = None,
    workspace: str = DEFAULT_WORKSPACE,
) -> Iterator[DltResource]:
    """Every agent, its detail, versions, version details and aliases.

    `requests_per_second` paces all requests (0: no limit). `aliases_every_run=False` fetches
    aliases only for agents new or changed since the listing the warehouse holds (an alias can be
    re-pointed without changing the agent, so the default fetches them every run).
    `full_refresh_tables` names the tables to load whole, whatever the warehouse holds.
    `record` is what the warehouse holds, read from the pipeline's destination when the run
    starts unless given. `empty_table_format` is the file format of a table that gets no row
    (dlt's default when None). `run_stats`, when given, receives the run's request and agent
    counts. `workspace` names the Mistral workspace the key belongs to: every row carries it, and
    `record` must be that workspace's.
    """
    settings = SourceSettings(base_url, agents_page_size, versions_page_size, requests_per_second)
    stats = run_stats if run_stats is not None else RunStats()
    run = _Run(
        settings,
        api_key,
        stats,
        record,
        frozenset(full_refresh_tables),
        empty_table_format,
        workspace,
    )

    @dlt.resource(**_hints("agents"))
    def agents() -> Iterator[Any]:
        run.open()
        listed: set[str] = set()
        # One item at a time, so that dlt fans each agent's child requests out to its pool.
        for page in run.api.agent_pages(agents_page_size):
            for agent in page:
                if agent["id"] in listed:
                    # An offset page list shifts when an agent is created during the scan.
                    logger.warning("Agent %s was listed twice; it is loaded once", agent["id"])
                    continue
                listed.add(agent["id"])
                stats.rows_from_api("agents", 1)
                run.saw(agent)
                yield current_row(workspace, agent)
        if run.api.listing_may_shift:
            # An agent deleted during an offset scan shifts the pages after it, and one live
            # agent is skipped: an agent the warehouse holds and the listing did not return is
            # asked for by id, and only a 404 says it is gone.
            for agent_id in sorted(run.record.listing.keys() - listed):
                try:
                    agent = run.api.agent(agent_id)
                except ApiNotFoundError:
                    continue
                logger.warning("Agent %s was skipped by the shifting listing", agent_id)
                listed.add(agent_id)
                stats.rows_from_api("agents", 1)
                run.saw(agent)
                yield current_row(workspace, agent)
        run.listed = len(listed)
        stats.listing_complete = True
        if run.creates_tables():
            marker = dlt.mark.materialize_table_schema()
            # Handed on to the child tables whether or not `agents` itself has rows.
            yield run.hand_on("agents", marker) if not listed else marker
        gone = sorted(run.record.listing.keys() - listed)
        counts = stats.agents
        counts.deleted = len(gone)
        logger.info(
            "Listed %d agents: %d new, %d changed, %d unchanged, %d no longer listed%s",
            len(listed),
            counts.new,
            counts.changed,
            counts.unchanged,
            counts.deleted,
            f" ({', '.join(gone[:10])}{', ...' if len(gone) > 10 else ''})" if gone else "",
        )

    @dlt.transformer(data_from=agents, **_hints("agent_detail"), parallelized=True)
    def agent_detail(agent: Any) -> Any:
        if _is_marker(agent):
            return run.hand_on("agent_detail", agent)
        if run.record.detail.get(agent["id"]) == fingerprint(agent):
            return []
        detail = _unless_gone(stats, "agent_detail", "detail", agent["id"], run.api.agent)
        if detail is None:
            return []
        stats.rows_from_api("agent_detail", 1)
        return [current_row(workspace, detail)]

    @dlt.transformer(data_from=agents, **_hints("agent_versions"), parallelized=True)
    def agent_versions(agent: Any) -> Any:
        if _is_marker(agent):
            return run.hand_on("agent_versions", agent)
        agent_id, listed = agent["id"], agent.get("versions") or []
        missing = set(listed) - run.record.versions.get(agent_id, set())
        if not missing:
            return []
        page_size = settings.versions_page_size
        rows = _unless_gone(
            stats, "agent_versions", "versions", agent_id, run.api.versions, len(listed), page_size
        )
        by_number = {row.get("version"): row for row in rows or []}
        if rows and by_number.keys() != set(listed):
            logger.warning(
                "Agent %s lists versions %s but the version listing returned %s",
                agent_id,
                sorted(listed),
                sorted(by_number, key=str),
            )
        # Once each: a list that shifts during its scan can return a version twice.
        new = [
            child_row(workspace, agent_id, by_number[n]) for n in sorted(missing & by_number.keys())
        ]
        stats.rows_from_api("agent_versions", len(new))
        return new

    @dlt.transformer(data_from=agents, **_hints("agent_version_detail"), parallelized=True)
    def agent_version_detail(agent: Any) -> Any:
        # Fed by `agents` (whose `versions` list names every version) rather than by
        # agent_versions, so that each table decides from its own rows what it still needs.
        if _is_marker(agent):
            return run.hand_on("agent_version_detail", agent)
        agent_id = agent["id"]
        loaded = run.record.version_detail.get(agent_id, set())
        details = []
        for number in sorted(set(agent.get("versions") or []) - loaded):
            detail = _unless_gone(
                stats,
                "agent_version_detail",
                f"version {number}",
                agent_id,
                run.api.version,
                number,
            )
            if detail is not None:
                details.append(child_row(workspace, agent_id, detail))
        stats.rows_from_api("agent_version_detail", len(details))
        return details

    @dlt.transformer(
        data_from=agents, **_hints("agent_aliases", agent_rows=False), parallelized=True
    )
    def agent_aliases(agent: Any) -> Any:
        if _is_marker(agent):
            return run.hand_on("agent_aliases", agent)
        agent_id = agent["id"]
        if not aliases_every_run and run.record.listing.get(agent_id) == fingerprint(agent):
            return []
        current = _unless_gone(stats, "agent_aliases", "aliases", agent_id, run.api.aliases)
        if current is None:
            return []
        stats.rows_from_api("agent_aliases", len(current))
        names = {alias["alias"] for alias in current}
        now = datetime.now(UTC)
        # An alias that disappeared stays, marked deleted, with what it pointed at.
        tombstones = [
            {
                WORKSPACE: workspace,
                "agent_id": agent_id,
                "alias": name,
                "version": version,
                "created_at": created_at,
                "updated_at": updated_at,
                "deleted_at": now,
            }
            for name, (version, created_at, updated_at) in run.record.aliases.get(
                agent_id, {}
            ).items()
            if name not in names
        ]
        return [child_row(workspace, agent_id, alias) for alias in current] + tombstones

    yield agents
    yield agent_detail
    yield agent_versions
    yield agent_aliases
    yield agent_version_detail


def source_for_definitions() -> DltSource:
    """The source as a code location declares it: every argument given, so that dlt resolves no
    configuration and reads no secret. Only its resources' names and hints are read from it; a
    run builds its own source from configuration."""
    return chat_agents_source(
        api_key=None,
        base_url=DEFAULT_BASE_URL,
        agents_page_size=AGENTS_PAGE_SIZE,
        versions_page_size=VERSIONS_PAGE_SIZE_MAX,
        requests_per_second=0.0,
        aliases_every_run=True,
        full_refresh_tables=(),
        record=WarehouseRecord(),
        empty_table_format=None,
        run_stats=RunStats(),
        workspace=DEFAULT_WORKSPACE,
    )
