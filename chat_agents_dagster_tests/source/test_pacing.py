"""Client-side pacing: a requests-per-second limit keeps a run under the API's quota, and a 429
holds every worker until its Retry-After has passed."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source.pacing import Pacer, retry_after_seconds
from chat_agents_dagster_tests.helpers import load, point_at, query


@pytest.fixture
def limited(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=15, seed=9, max_versions=2), rps_limit=20)
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__EXTRACT__WORKERS", "8")
    return server


def test_pacing_below_the_quota_gets_no_429_and_loads_everything(limited: SandboxServer) -> None:
    pipeline, stats = load(requests_per_second=15)

    assert stats.by_status[429] == 0
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agents")[0][0] == 15


def test_without_a_configured_limit_one_burst_of_429s_slows_the_run_down(
    limited: SandboxServer,
) -> None:
    pipeline, stats = load()

    # The first burst meets the quota; after it the pace follows what the API accepted, so the
    # 429s stay within about one burst of the 8 workers instead of recurring all run long.
    assert 0 < stats.by_status[429] <= 16
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agents")[0][0] == 15


def test_a_429_holds_every_sender_until_retry_after_has_passed() -> None:
    pacer = Pacer(per_second=0)
    for _ in range(5):
        pacer.accepted()
    pacer.rate_limited(0.3)
    started = time.monotonic()
    pacer.wait_for_slot()
    assert time.monotonic() - started >= 0.25
    assert pacer.interval == pytest.approx(1 / (5 * 0.9))


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("7") == 7.0
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (retry_after_seconds(in_ten) or 0) <= 10.0
    assert retry_after_seconds("soon") is None
