"""Request counters, by route template and by answered status, and a log of recent requests."""

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

# Enough for any test or benchmark run; older entries fall off so memory stays bounded.
LOG_SIZE = 100_000


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it: arrival (wall clock, comparable with a Retry-After
    date), route template, path with query string, the status answered (0: none, the connection
    was held then closed) and the Retry-After sent, if any."""

    arrived: float
    route: str
    target: str
    status: int
    retry_after: str | None


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._first = 0.0
        self._last = 0.0
        self._log: deque[LoggedRequest] = deque(maxlen=LOG_SIZE)

    def record_request(self, route: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._total += 1
            self._by_route[route] += 1
            self._first = self._first or now
            self._last = now

    def record_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

    def log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def requests(self, route: str | None = None) -> list[LoggedRequest]:
        """Logged requests in the order they were answered, of one route template if given."""
        with self._lock:
            return [entry for entry in self._log if route in (None, entry.route)]

    def total(self) -> int:
        with self._lock:
            return self._total

    def count(self, route: str) -> int:
        """Requests received for a route template such as "GET /v1/agents/{agent_id}"."""
        with self._lock:
            return self._by_route[route]

    def count_status(self, status: int) -> int:
        with self._lock:
            return self._by_status[status]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "by_route": dict(sorted(self._by_route.items())),
                "by_status": {str(s): n for s, n in sorted(self._by_status.items())},
                # From the first request received to the last, since the last reset: how long a
                # client spent asking, without its start-up and what it did after its requests.
                "window_s": round(self._last - self._first, 3),
            }

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_route.clear()
            self._by_status.clear()
            self._log.clear()
            self._first = self._last = 0.0
