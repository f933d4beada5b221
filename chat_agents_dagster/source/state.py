"""What earlier runs loaded, kept in dlt's source state.

dlt stores source state in the destination (`_dlt_pipeline_state`) with every load package and
restores it when the local working directory is missing, so a new machine still loads
incrementally, and a deleted warehouse means a full reload. The state commits with the load that
wrote the rows it describes: a failed run leaves it as it was.

Every table keeps its own record, written only by that table's resource: a run that loads only
some tables (a Dagster subset) leaves the others' records alone, so they catch up later.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LISTING = "listing"
DETAIL = "agent_detail"
VERSIONS = "agent_versions"
VERSION_DETAIL = "agent_version_detail"
ALIASES = "agent_aliases"

AliasRecord = list[Any]  # [version, created_at, updated_at]: enough to write a tombstone row

# The record that says what each table holds (the agents table's is the last listing).
RECORD_OF_TABLE = {
    "agents": LISTING,
    DETAIL: DETAIL,
    VERSIONS: VERSIONS,
    VERSION_DETAIL: VERSION_DETAIL,
    ALIASES: ALIASES,
}


def never_loaded(source_state: dict[str, Any]) -> set[str]:
    """Tables no run has loaded into this destination yet: a run writes every record, so one
    is missing only before the first load (or after the dataset was deleted)."""
    return {
        table
        for table, record in RECORD_OF_TABLE.items()
        if not isinstance(source_state.get(record), dict)
    }


def fingerprint(agent: dict[str, Any]) -> str:
    """Changes whenever the agent's `updated_at` or its list of versions changes."""
    text = json.dumps([agent.get("updated_at"), agent.get("versions")], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class AgentCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass
class LoadState:
    """A view over the source state dict. Per-agent entries are written from the worker threads
    that fetch an agent's children, one agent per thread, so no two threads touch one entry."""

    state: dict[str, Any]
    full_refresh: bool = False
    counts: AgentCounts = field(default_factory=AgentCounts)

    def __post_init__(self) -> None:
        for table in (LISTING, DETAIL, VERSIONS, VERSION_DETAIL, ALIASES):
            if self.full_refresh or not isinstance(self.state.get(table), dict):
                self.state[table] = {}

    def table(self, name: str) -> dict[str, Any]:
        records: dict[str, Any] = self.state[name]
        return records

    def saw(self, agent: dict[str, Any]) -> None:
        """Counts an agent of the listing as new, changed or unchanged since the last listing."""
        before = self.table(LISTING).get(agent["id"])
        now = fingerprint(agent)
        if before is None:
            self.counts.new += 1
        elif before != now:
            self.counts.changed += 1
        else:
            self.counts.unchanged += 1
        self.table(LISTING)[agent["id"]] = now

    def listing_complete(self, listed: set[str]) -> list[str]:
        """Forgets every agent the complete listing no longer has, in every table, so that one
        that comes back is loaded afresh. Only a completed listing may decide this."""
        gone = [agent_id for agent_id in list(self.table(LISTING)) if agent_id not in listed]
        for name in (LISTING, DETAIL, VERSIONS, VERSION_DETAIL, ALIASES):
            records = self.table(name)
            for agent_id in gone:
                records.pop(agent_id, None)
        self.counts.deleted = len(gone)
        return gone

    def detail_is_current(self, agent: dict[str, Any]) -> bool:
        return self.table(DETAIL).get(agent["id"]) == fingerprint(agent)

    def detail_loaded(self, agent: dict[str, Any]) -> None:
        self.table(DETAIL)[agent["id"]] = fingerprint(agent)

    def versions_missing(self, table: str, agent: dict[str, Any]) -> list[int]:
        """Versions in the agent's `versions` list not yet loaded into `table`: versions never
        change once created, so a loaded one is never fetched again."""
        loaded = set(self.table(table).get(agent["id"], ()))
        return [v for v in agent.get("versions") or [] if v not in loaded]

    def versions_loaded(self, table: str, agent_id: str, versions: Iterable[int]) -> None:
        records = self.table(table)
        records[agent_id] = sorted({*records.get(agent_id, ()), *versions})

    def aliases_before(self, agent_id: str) -> dict[str, Any]:
        """{"fingerprint": the agent's when its aliases were loaded, "aliases": {name: record}}."""
        before: dict[str, Any] = self.table(ALIASES).get(agent_id, {})
        return before

    def aliases_loaded(self, agent_id: str, agent_fingerprint: str, aliases: list[Any]) -> None:
        records: dict[str, AliasRecord] = {
            a["alias"]: [a.get("version"), a.get("created_at"), a.get("updated_at")]
            for a in aliases
        }
        self.table(ALIASES)[agent_id] = {"fingerprint": agent_fingerprint, "aliases": records}
