"""Storage units of the world: the logical clock and one agent's history."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
FIELD_ORDER = [
    "id",
    "object",
    "name",
    "model",
    "version",
    "versions",
    "created_at",
    "updated_at",
    "deployment_chat",
    "source",
    "instructions",
    "description",
    "tools",
    "completion_args",
    "guardrails",
    "handoffs",
    "metadata",
    "owner_id",
    "version_message",
]


def micros_since_epoch(instant: datetime) -> int:
    """The logical clock's reading at `instant` (an aware datetime)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def format_timestamp(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Clock:
    """Logical time, so a seed reproduces every timestamp byte for byte."""

    micros: int = 0

    def advance(self, micros: int) -> str:
        self.micros += max(1, micros)
        return format_timestamp(self.micros)


def arrange(snapshot: JSON) -> JSON:
    """Known fields in the API's order, unknown (future) fields after them."""
    known = {k: snapshot[k] for k in FIELD_ORDER if k in snapshot}
    return known | {k: v for k, v in snapshot.items() if k not in known}


@dataclass
class AgentRecord:
    """One agent: immutable snapshots indexed by version number, plus mutable pointers.

    Snapshots are never mutated after they are appended, so readers may share them; a snapshot's
    `versions` lists the versions that existed when it was created.
    """

    agent_id: str
    created_at: str
    updated_at: str
    snapshots: list[JSON]
    active: int = 0
    aliases: dict[str, JSON] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.created_at, self.agent_id)

    def as_served(self) -> JSON:
        """The agent as GET /agents/{id} shows it: the active snapshot, current bookkeeping."""
        versions = [s["version"] for s in self.snapshots]
        return self.snapshots[self.active] | {"versions": versions, "updated_at": self.updated_at}
