"""What a run did: the API's answers by endpoint and status, and what happened to the agents."""

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class AgentCounts:
    """The listing compared with the one the warehouse holds."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0


class RunStats:
    """Thread-safe counters, filled during the run, read after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.api_rows: Counter[str] = Counter()
        self.malformed = 0  # successes whose body was not JSON, retried like server errors
        self.agents = AgentCounts()
        self.gone: dict[str, set[str]] = {}
        self._listed: dict[str, tuple[Any, ...]] = {}
        self.listing_complete = False

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.by_endpoint[endpoint] += 1
            self.by_status[status] += 1

    def malformed_answer(self) -> None:
        with self._lock:
            self.malformed += 1

    def rows_from_api(self, table: str, rows: int) -> None:
        """Live rows the API returned for `table` this run (tombstones not counted)."""
        with self._lock:
            self.api_rows[table] += rows

    def gone_mid_run(self, table: str, agent_id: str) -> None:
        """An agent whose request for `table` answered 404: it was deleted during the run, and
        its rows of `table` are missing until the next run marks it deleted."""
        with self._lock:
            self.gone.setdefault(table, set()).add(agent_id)

    def listed(self, agent_id: str, fingerprint: tuple[Any, ...]) -> None:
        """An agent of the listing, with what says whether it changed (record.fingerprint)."""
        with self._lock:
            self._listed[agent_id] = fingerprint

    def listing_digest(self) -> str | None:
        """A digest of the whole listing: the same agents with the same fingerprints give the same
        digest; None until the listing was read to its end."""
        if not self.listing_complete:
            return None
        with self._lock:
            text = repr(sorted(self._listed.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    @property
    def retried(self) -> int:
        """Answers that made dlt's session try again (or give up): 429s, server errors and
        successes whose body was not JSON."""
        statuses = sum(n for status, n in self.by_status.items() if status in RETRIED_STATUSES)
        return statuses + self.malformed

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.by_endpoint.values()),
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "retried": self.retried,
                "rate_limited": self.by_status[429],
                "agents_listed": len(self._listed),
                "agents": vars(self.agents).copy(),
                "api_rows": dict(self.api_rows),
                "gone_mid_run": {table: sorted(ids) for table, ids in sorted(self.gone.items())},
            }
