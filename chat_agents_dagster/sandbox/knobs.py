"""Misbehaviour state shared by all request threads: injected failures, one-shot hooks, the
fault rng, and each workspace's rate-limit window."""

import email.utils
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat_agents_dagster.sandbox.config import RetryAfterFormat

Hook = Callable[[Any, dict[str, str]], None]
_FAULT_STATUSES = (503, 500, 502)


@dataclass
class Failure:
    """`remaining` uses of one misbehaviour: a status (with a 429's Retry-After of
    `retry_after_s`); when `hang_s` is set, holding the connection that long unanswered; when
    `cut_fraction` is set, the true answer cut off after that fraction of its body."""

    remaining: int
    status: int
    route: str | None
    headers: dict[str, str] | None
    body: Any
    retry_after_s: float = 1.0
    hang_s: float | None = None
    cut_fraction: float | None = None


def retry_after(seconds: float, fmt: RetryAfterFormat) -> str:
    """Whole seconds (>= 1), or an HTTP date rounded up so the client never retries early."""
    wait = max(1, math.ceil(seconds))
    if fmt == "http-date":
        return email.utils.formatdate(math.ceil(time.time()) + wait, usegmt=True)
    return str(wait)


class Knobs:
    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._failures: list[Failure] = []
        self._hooks: list[tuple[str, Hook]] = []
        self._rng = random.Random(seed)

    def add_failure(self, failure: Failure) -> None:
        with self._lock:
            self._failures.append(failure)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def take_failure(self, route: str) -> Failure | None:
        """Consume one use of the oldest failure rule matching `route`."""
        with self._lock:
            for failure in self._failures:
                if failure.route in (None, route):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure
            return None

    def add_hook(self, route: str, hook: Hook) -> None:
        with self._lock:
            self._hooks.append((route, hook))

    def take_hooks(self, route: str) -> list[Hook]:
        with self._lock:
            taken = [hook for r, hook in self._hooks if r == route]
            self._hooks = [(r, hook) for r, hook in self._hooks if r != route]
            return taken

    def fault(self, rate: float) -> int | None:
        if rate <= 0.0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            return self._rng.choice(_FAULT_STATUSES)


class RateWindow:
    """One workspace's requests in the last second: Mistral's rate limits are per workspace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: deque[float] = deque()

    def admit(self, rps_limit: float | None) -> float | None:
        """None if the request fits in the sliding one-second window, else seconds to wait.
        Only admitted requests occupy the window, so a client that backs off gets through."""
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            if rps_limit is not None and len(self._window) >= rps_limit:
                return self._window[0] + 1.0 - now
            self._window.append(now)
            return None
