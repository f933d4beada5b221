"""The sandbox's ground truth: agents, version snapshots and aliases, behind one lock."""

import bisect
import json
import random
import re
import threading
from datetime import datetime
from typing import Any, TypeVar

from chat_agents_dagster.sandbox import content
from chat_agents_dagster.sandbox.generate import generate_records
from chat_agents_dagster.sandbox.records import (
    JSON,
    AgentRecord,
    Clock,
    arrange,
    micros_since_epoch,
)

ALIAS_PATTERN = re.compile(r"^[a-z]([a-z0-9_-]*[a-z0-9])?$")
_SERVER_OWNED = frozenset({"id", "object", "version", "versions", "created_at", "updated_at"})
_MUTATION_TICK_US = 1_000_000
_T = TypeVar("_T")


class NotFoundError(KeyError):
    """An agent, version or alias that does not exist (a KeyError with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def _copy(value: _T) -> _T:
    """Deep copy through JSON: callers get values they may mutate without touching the world."""
    copied: _T = json.loads(json.dumps(value))
    return copied


def _maybe_copy(value: _T, copy: bool) -> _T:
    """`copy=False` is for the HTTP layer, which only serializes what it reads: snapshots are
    never mutated and alias records are replaced, not edited, so sharing them is safe and saves
    two JSON passes per request (the sandbox's CPU would otherwise bound benchmarks)."""
    return _copy(value) if copy else value


def _completion_args(given: JSON | None) -> JSON:
    return dict.fromkeys(content.COMPLETION_KEYS) | {"tool_choice": "auto"} | (given or {})


class World:
    """Thread-safe in-memory registry. Readers return deep copies; mutations advance a logical
    clock by one second each, so a seed plus a sequence of mutations is reproducible."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, AgentRecord] = {}
        # Deleted agents are kept aside so that one can come back (as when sharing is restored).
        self._deleted: dict[str, AgentRecord] = {}
        self._order: list[tuple[str, str]] = []
        self._clock = Clock()
        self._rng = random.Random(f"{seed}:mutations")

    @classmethod
    def generate(
        cls,
        agents: int = 50,
        seed: int = 0,
        max_versions: int = 4,
        heavy_agents: int = 0,
        heavy_versions: int = 120,
        max_aliases: int = 3,
        min_versions: int = 1,
    ) -> "World":
        """`agents` agents with min_versions..max_versions versions each (the first
        `heavy_agents` get `heavy_versions`) and up to `max_aliases` aliases."""
        world = cls(seed)
        for record in generate_records(
            agents=agents,
            seed=seed,
            min_versions=min_versions,
            max_versions=max_versions,
            heavy_agents=heavy_agents,
            heavy_versions=heavy_versions,
            max_aliases=max_aliases,
            clock=world._clock,
        ):
            world._insert(record)
        return world

    def _insert(self, record: AgentRecord) -> None:
        self._records[record.agent_id] = record
        bisect.insort(self._order, record.key)

    def _record(self, agent_id: str) -> AgentRecord:
        record = self._records.get(agent_id)
        if record is None:
            raise NotFoundError(f"Agent {agent_id} not found")
        return record

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    # Readers

    def agents(self) -> list[JSON]:
        """Every live agent, ordered by created_at then id (the listing order)."""
        with self._lock:
            return _copy([self._records[agent_id].as_served() for _, agent_id in self._order])

    def agent(self, agent_id: str, copy: bool = True) -> JSON | None:
        with self._lock:
            record = self._records.get(agent_id)
            return None if record is None else _maybe_copy(record.as_served(), copy)

    def versions(self, agent_id: str) -> list[JSON]:
        """All snapshots by ascending version; raises NotFoundError for an unknown agent."""
        with self._lock:
            return _copy(self._record(agent_id).snapshots)

    def version(self, agent_id: str, version: int, copy: bool = True) -> JSON | None:
        with self._lock:
            record = self._records.get(agent_id)
            if record is None or not 0 <= version < len(record.snapshots):
                return None
            return _maybe_copy(record.snapshots[version], copy)

    def aliases(self, agent_id: str, copy: bool = True) -> list[JSON]:
        """Raises NotFoundError for an unknown agent."""
        with self._lock:
            return _maybe_copy(list(self._record(agent_id).aliases.values()), copy)

    def resolve_version(self, agent_id: str, ref: str) -> int | None:
        """The version an `agent_version` value names: all digits is a number, else an alias."""
        with self._lock:
            record = self._records.get(agent_id)
            if record is None:
                return None
            if ref.isdigit():
                return int(ref) if int(ref) < len(record.snapshots) else None
            alias = record.aliases.get(ref)
            return None if alias is None else int(alias["version"])

    def agents_after(
        self, key: tuple[str, str] | None, limit: int, newest_first: bool = False, copy: bool = True
    ) -> tuple[list[JSON], bool]:
        """Up to `limit` agents following `key` in the listing order (keyset paging, stable under
        creates and deletes), and whether more follow."""
        with self._lock:
            if newest_first:
                end = len(self._order) if key is None else bisect.bisect_left(self._order, key)
                keys = self._order[max(0, end - limit) : end][::-1]
                more = end - limit > 0
            else:
                start = 0 if key is None else bisect.bisect_right(self._order, key)
                keys = self._order[start : start + limit]
                more = start + limit < len(self._order)
            return _maybe_copy([self._records[k[1]].as_served() for k in keys], copy), more

    def agents_slice(
        self, offset: int, limit: int, newest_first: bool = False, copy: bool = True
    ) -> list[JSON]:
        """An offset page of the listing: it shifts when agents are created or deleted."""
        with self._lock:
            order = self._order[::-1] if newest_first else self._order
            keys = order[offset : offset + limit]
            return _maybe_copy([self._records[k[1]].as_served() for k in keys], copy)

    def versions_slice(
        self,
        agent_id: str,
        offset: int,
        limit: int,
        newest_first: bool = False,
        copy: bool = True,
    ) -> list[JSON]:
        with self._lock:
            snapshots = self._record(agent_id).snapshots
            ordered = snapshots[::-1] if newest_first else snapshots
            return _maybe_copy(ordered[offset : offset + limit], copy)

    # Mutations

    def _now(self) -> str:
        return self._clock.advance(_MUTATION_TICK_US)

    def advance_to(self, instant: datetime) -> None:
        """Moves the logical clock on (never back) so that the next mutation is stamped 1 µs
        after `instant`, and the ones after it a tick apart as usual: a test dates a change
        between two runs it has timed."""
        with self._lock:
            next_stamp = micros_since_epoch(instant) + 1
            self._clock.micros = max(self._clock.micros, next_stamp - _MUTATION_TICK_US)

    def create_agent(self, **fields: Any) -> JSON:
        """A new agent at version 0; `model` and `name` are required, unknown fields are kept."""
        if not isinstance(fields.get("model"), str) or not isinstance(fields.get("name"), str):
            raise ValueError("model and name are required strings")
        if _SERVER_OWNED & fields.keys():
            raise ValueError(f"server-owned fields: {sorted(_SERVER_OWNED & fields.keys())}")
        fields = _copy(fields)
        with self._lock:
            stamp = self._now()
            agent_id = "ag_" + content.hex_id(self._rng)
            defaults: JSON = dict.fromkeys(["instructions", "description", "guardrails"])
            defaults |= dict.fromkeys(["handoffs", "metadata", "owner_id", "version_message"])
            defaults |= {"tools": [], "deployment_chat": False, "source": "api"}
            snapshot = arrange(
                defaults
                | fields
                | {"id": agent_id, "object": "agent", "version": 0, "versions": [0]}
                | {"created_at": stamp, "updated_at": stamp}
                | {"completion_args": _completion_args(fields.get("completion_args"))}
            )
            record = AgentRecord(agent_id, stamp, stamp, [snapshot])
            self._insert(record)
            return _copy(record.as_served())

    def update_agent(self, agent_id: str, **fields: Any) -> JSON:
        """A new version: the active snapshot with `fields` changed, made active."""
        if _SERVER_OWNED & fields.keys():
            raise ValueError(f"server-owned fields: {sorted(_SERVER_OWNED & fields.keys())}")
        fields = _copy(fields)
        if "completion_args" in fields:
            fields["completion_args"] = _completion_args(fields["completion_args"])
        with self._lock:
            record = self._record(agent_id)
            number = len(record.snapshots)
            stamp = self._now()
            snapshot = arrange(
                record.snapshots[record.active]
                | {"version_message": None}
                | fields
                | {"version": number, "versions": list(range(number + 1)), "updated_at": stamp}
            )
            record.snapshots.append(snapshot)
            record.active = number
            record.updated_at = stamp
            return _copy(record.as_served())

    def delete_agent(self, agent_id: str) -> None:
        with self._lock:
            record = self._record(agent_id)
            del self._records[agent_id]
            self._order.pop(bisect.bisect_left(self._order, record.key))
            self._deleted[agent_id] = record

    def restore_agent(self, agent_id: str) -> JSON:
        """Brings a deleted agent back unchanged, under its own id."""
        with self._lock:
            if agent_id not in self._deleted:
                raise NotFoundError(f"Agent {agent_id} was not deleted")
            self._insert(self._deleted.pop(agent_id))
            return _copy(self._records[agent_id].as_served())

    def switch_version(self, agent_id: str, version: int, touch: bool = False) -> JSON:
        """Makes `version` the active one. Whether that moves the agent's `updated_at` is not
        documented: only with `touch`."""
        with self._lock:
            record = self._record(agent_id)
            if not 0 <= version < len(record.snapshots):
                raise NotFoundError(f"Version {version} of agent {agent_id} not found")
            record.active = version
            stamp = self._now()
            if touch:
                record.updated_at = stamp
            return _copy(record.as_served())

    def set_alias(
        self, agent_id: str, alias: str, version: int, touch: bool = False, restamp: bool = True
    ) -> JSON:
        """Create or re-point an alias; the agent's `updated_at` moves only with `touch`. Whether
        re-pointing moves the alias's own `updated_at` is not documented either: only with
        `restamp`."""
        if len(alias) > 64 or not ALIAS_PATTERN.match(alias):
            raise ValueError(f"alias must match {ALIAS_PATTERN.pattern} (1..64 chars)")
        with self._lock:
            record = self._record(agent_id)
            if not 0 <= version < len(record.snapshots):
                raise NotFoundError(f"Version {version} of agent {agent_id} not found")
            stamp = self._now()
            existing = record.aliases.get(alias, {})
            record.aliases[alias] = {
                "alias": alias,
                "version": version,
                "created_at": existing.get("created_at", stamp),
                "updated_at": stamp if restamp or not existing else existing["updated_at"],
            }
            if touch:
                record.updated_at = stamp
            return _copy(record.aliases[alias])

    def delete_alias(self, agent_id: str, alias: str, touch: bool = False) -> None:
        with self._lock:
            record = self._record(agent_id)
            if alias not in record.aliases:
                raise NotFoundError(f"Alias {alias} of agent {agent_id} not found")
            del record.aliases[alias]
            if touch:
                record.updated_at = self._now()
