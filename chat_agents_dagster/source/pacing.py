"""Client-side pacing: a requests-per-second limit shared by every worker thread, a shared pause
when the API answers 429, and a slower pace after one.

dlt's retrying session waits out `Retry-After` for the one request that got the 429, but the
other workers keep sending and collect 429s of their own. Pacing sits in a requests transport
adapter, below dlt's retry, so that every attempt (retries included) is paced and a 429 pauses all
workers until the time the API asked for. dlt has no client-side rate limiter to use instead.
Mistral's quotas are per organisation and not announced in headers, hence the adaptation.
"""

import threading
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: an integer, or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Pacer:
    """Hands out send slots at most `per_second` apart (0: no limit to start with), holds every
    sender while a 429's Retry-After runs, and slows down on a 429: the new rate is 90% of the
    answers the API accepted in the second before it, so a run without a configured limit, or
    with one slightly above the real quota, settles below the quota after one burst. A 429 after
    a second with no accepted answer only pauses."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._accepted: deque[float] = deque(maxlen=4096)

    def wait_for_slot(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def accepted(self) -> None:
        with self._lock:
            self._accepted.append(time.monotonic())

    def rate_limited(self, retry_after: float) -> None:
        with self._lock:
            now = time.monotonic()
            recent = sum(1 for t in self._accepted if t > now - 1.0)
            # One slow-down per burst of 429s, and only with evidence: a 429 when no answer was
            # accepted in the second before (a run's first request, the quota spent by another
            # client of the organisation) says nothing about the pace to keep; slowing to under
            # one request a second for it would make a 2,400-request run last most of an hour.
            if now >= self._paused_until and recent:
                self.interval = max(self.interval, 1.0 / (recent * 0.9))
            self._paused_until = max(self._paused_until, now + retry_after)


class PacedAdapter(HTTPAdapter):
    def __init__(self, pacer: Pacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self.pacer.wait_for_slot()
        response = super().send(request, *args, **kwargs)
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            self.pacer.rate_limited(1.0 if wait is None else wait)
        else:
            self.pacer.accepted()
        return response
