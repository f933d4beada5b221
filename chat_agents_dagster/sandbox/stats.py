"""Request counters, by route template and by answered status."""

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()

    def record_request(self, route: str) -> None:
        with self._lock:
            self._total += 1
            self._by_route[route] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

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
            }

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_route.clear()
            self._by_status.clear()
