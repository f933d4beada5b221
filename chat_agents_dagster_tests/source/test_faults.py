"""The fault matrix, against the sandbox: server errors and a server that stops answering, answers
that are not JSON, 429 storms and bad configuration. A run that cannot finish fails clearly,
naming the endpoint or the setting, and leaves the warehouse exactly as it was; the next run
that can finish brings the warehouse to the API's truth.

Kills (SIGKILL) and two runs at once are in test_faults_processes.py, schema drift in
../dagster_layer/test_faults_schema.py.
"""

import json
import time
import traceback
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.sandbox.stats import LoggedRequest
from chat_agents_dagster.source import ApiNotFoundError, ChatAgentsConfigError
from chat_agents_dagster.source.api import ApiAnswerError, ApiConnectionError
from chat_agents_dagster.source.pacing import Pacer
from chat_agents_dagster.source.pipeline import DuckDbOutOfMemoryError
from chat_agents_dagster.tables import DATASET_NAME
from chat_agents_dagster_tests.helpers import API_KEY, error_chain, load, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth, snapshot

LISTING = "GET /v1/agents/pages"
DETAIL = "GET /v1/agents/{agent_id}"
VERSION = "GET /v1/agents/{agent_id}/versions/{version}"
ALIASES = "GET /v1/agents/{agent_id}/aliases"
PROXY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.fixture
def server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=15, seed=5, max_versions=3, max_aliases=2))
    point_at(server, monkeypatch.setenv)
    return server


@pytest.fixture
def loaded(server: SandboxServer, isolated: Path) -> Iterator[Path]:
    """A successful first load, then a night of change in the API; yields the DuckDB file."""
    load()
    world = server.world
    agents = world.agents()
    world.create_agent(name="Born tonight", model="mistral-small-latest")
    for agent in agents[:3]:
        world.update_agent(agent["id"], instructions=f"Changed tonight: {agent['id']}")
    world.delete_agent(agents[-1]["id"])
    server.stats.reset()
    yield isolated / "warehouse.duckdb"


def failure_of(error: BaseException, kind: type[BaseException]) -> BaseException:
    """The `kind` error a failed run carries; its whole traceback never shows the API key."""
    assert API_KEY not in "".join(traceback.format_exception(error))
    return next(e for e in error_chain(error) if isinstance(e, kind))


def fails_and_changes_nothing(server: SandboxServer, database: Path) -> PipelineStepFailed:
    """Runs the load, which must fail and leave every table as it was; then the API heals."""
    before = snapshot(database)
    with pytest.raises(PipelineStepFailed) as failure:
        load()
    assert snapshot(database) == before
    server.heal()
    return failure.value


# Server errors and a server that stops answering


def test_server_errors_that_persist_fail_a_nightly_run_and_change_nothing(
    server: SandboxServer, loaded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    server.fail_next(100, status=503, route=VERSION)

    failure = fails_and_changes_nothing(server, loaded)

    assert "answered 503 to GET /agents/{agent_id}/versions/{version}" in str(failure)
    failed_paths = [r.target for r in server.stats.requests(VERSION)]
    assert max(failed_paths.count(path) for path in failed_paths) == 3  # the retry bound
    pipeline, _ = load()
    assert_equals_truth(pipeline, server.world)


def test_a_server_that_stops_answering_for_a_while_costs_timeouts_not_the_run(
    server: SandboxServer, loaded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    server.hang_next(2, route=DETAIL, seconds=120)

    pipeline, _ = load()

    unanswered = [r for r in server.stats.requests(DETAIL) if r.status == 0]
    assert len(unanswered) == 2
    for request in unanswered:  # each was asked again, and answered
        assert answered_retry(server, request).status == 200
    assert_equals_truth(pipeline, server.world)


def test_a_server_that_stops_answering_fails_the_run_in_bounded_time_naming_the_endpoint(
    server: SandboxServer, loaded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    # Each request would be held two minutes: only the client's timeout ends them sooner.
    server.hang_next(1000, route=ALIASES, seconds=120)

    started = time.monotonic()
    failure = fails_and_changes_nothing(server, loaded)
    elapsed = time.monotonic() - started

    error = failure_of(failure, ApiConnectionError)
    assert "no complete answer to GET /agents/{agent_id}/aliases (http://127.0.0.1:" in str(error)
    assert "in 3 attempts: no answer within 1.0 s" in str(error)
    assert "RUNTIME__REQUEST_TIMEOUT" in str(error)
    attempts = by_target(server.stats.requests(ALIASES))
    assert max(len(tries) for tries in attempts.values()) == 3
    # Each attempt was given up at the timeout, not sooner: three waits of 1 s at least (backoff
    # alone is 0.01 s). Measured on the client's clock: the sandbox's arrival stamps lag behind
    # the client's timer when the machine is busy, so gaps between them prove nothing.
    assert elapsed >= 3 * 1.0
    assert elapsed < 60
    pipeline, _ = load()
    assert_equals_truth(pipeline, server.world)


# Answers that are not JSON


def test_a_proxy_error_page_answered_with_200_is_retried(
    server: SandboxServer, loaded: Path
) -> None:
    html = {"Content-Type": "text/html"}
    server.fail_next(2, status=200, route=DETAIL, headers=html, body=PROXY_PAGE)

    pipeline, stats = load()

    # Two answers more than agents asked for: the two error pages were asked again.
    attempts = by_target(server.stats.requests(DETAIL))
    assert sum(len(tries) for tries in attempts.values()) == len(attempts) + 2
    assert stats.retried == 2
    assert_equals_truth(pipeline, server.world)


@pytest.mark.parametrize("answer", ["html", "json_cut_short", "cut_in_transit"])
def test_an_answer_that_is_never_json_fails_naming_the_endpoint_and_loads_nothing(
    server: SandboxServer, loaded: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    if answer == "html":
        headers = {"Content-Type": "text/html"}
        server.fail_next(100, status=200, route=LISTING, headers=headers, body=PROXY_PAGE)
    elif answer == "json_cut_short":
        page = json.dumps({"object": "list", "data": server.world.agents()})
        body = page[: len(page) // 2]
        headers = {"Content-Type": "application/json"}
        server.fail_next(100, status=200, route=LISTING, headers=headers, body=body)
    else:
        server.cut_next(100, route=LISTING, fraction=0.5)

    failure = fails_and_changes_nothing(server, loaded)

    assert server.stats.count(LISTING) == 2  # retried, within the bound
    if answer == "cut_in_transit":
        error = failure_of(failure, ApiConnectionError)
        assert "to GET /agents/pages (http://127.0.0.1:" in str(error)
        assert "the answer was cut off" in str(error)
    else:
        error = failure_of(failure, ApiAnswerError)
        assert "answered 200 to GET /agents/pages (http://127.0.0.1:" in str(error)
        assert "with a body that is not JSON" in str(error)
        assert headers["Content-Type"] in str(error)
    assert PROXY_PAGE not in str(error)
    pipeline, _ = load()
    assert_equals_truth(pipeline, server.world)


# 429 storms


def assert_each_retry_waited_as_asked(server: SandboxServer, route: str) -> list[LoggedRequest]:
    """Every 429 of `route` was asked again no sooner than its Retry-After (seconds from the
    429, or an HTTP date), and every request of it ended answered; returns the 429s."""
    limited = [r for r in server.stats.requests(route) if r.status == 429]
    for request in limited:
        assert request.retry_after is not None
        if request.retry_after.isdigit():
            asked = request.arrived + int(request.retry_after)
        else:
            asked = parsedate_to_datetime(request.retry_after).timestamp()
        retry = answered_retry(server, request)
        assert retry.arrived >= asked, f"retried {asked - retry.arrived:.3f} s too early"
    for tries in by_target(server.stats.requests(route)).values():
        assert tries[-1].status == 200
    return limited


@pytest.mark.parametrize("retry_after_format", ["seconds", "http-date"])
def test_a_429_storm_at_the_first_request_is_waited_out_as_retry_after_asks(
    server: SandboxServer, loaded: Path, retry_after_format: str
) -> None:
    server.config.retry_after_format = retry_after_format  # type: ignore[assignment]
    # The first request meets three 429s in a row, each asking for 2 s: within the 5 attempts.
    server.fail_next(3, status=429, route=LISTING, retry_after_s=2)

    pipeline, stats = load()

    limited = assert_each_retry_waited_as_asked(server, LISTING)
    assert len(limited) == 3 and stats.by_status[429] == 3
    for request in limited:
        if retry_after_format == "seconds":
            assert request.retry_after == "2"
        else:
            date = parsedate_to_datetime(request.retry_after or "").timestamp()
            assert date >= request.arrived + 2
    assert_equals_truth(pipeline, server.world)


@pytest.mark.parametrize("retry_after_format", ["seconds", "http-date"])
def test_a_quota_storm_is_waited_out_as_retry_after_asks(
    start_sandbox: Callable[..., SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
    retry_after_format: str,
) -> None:
    # A real quota: 20 requests in any second, then 429s while the 8 workers fan out.
    world = World.generate(agents=15, seed=9, max_versions=2)
    server = start_sandbox(world, rps_limit=20, retry_after_format=retry_after_format)
    point_at(server, monkeypatch.setenv)
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__EXTRACT__WORKERS", "8")

    pipeline, stats = load()

    limited = [
        request
        for route in server.stats.snapshot()["by_route"]
        for request in assert_each_retry_waited_as_asked(server, route)
    ]
    assert len(limited) == stats.by_status[429] > 0
    assert all(r.retry_after and r.retry_after.isdigit() for r in limited) == (
        retry_after_format == "seconds"
    )
    assert_equals_truth(pipeline, server.world)


def test_a_429_with_nothing_accepted_before_pauses_without_slowing_the_run() -> None:
    pacer = Pacer(per_second=0)
    pacer.rate_limited(0.3)

    started = time.monotonic()
    pacer.wait_for_slot()

    assert time.monotonic() - started >= 0.25
    assert pacer.interval == 0.0


def by_target(requests: list[LoggedRequest]) -> dict[str, list[LoggedRequest]]:
    targets: dict[str, list[LoggedRequest]] = {}
    for request in requests:
        targets.setdefault(request.target, []).append(request)
    return targets


def answered_retry(server: SandboxServer, request: LoggedRequest) -> LoggedRequest:
    """The first later request for the same path and query: the retry of `request`."""
    later = [
        r
        for r in server.stats.requests(request.route)
        if r.target == request.target and r.arrived > request.arrived
    ]
    assert later, f"{request.target} was never asked again"
    return min(later, key=lambda r: r.arrived)


# Bad configuration


def test_an_unknown_destination_fails_before_any_request_naming_the_setting(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setenv("DESTINATION_TYPE", "nosuchdb")

    with pytest.raises(ChatAgentsConfigError) as failure:
        load()

    assert "destination_type is 'nosuchdb'" in str(failure.value)
    assert "DESTINATION_TYPE" in str(failure.value)
    assert server.stats.total() == 0
    assert not (isolated / "warehouse.duckdb").exists()


def test_an_unknown_destination_loads_the_code_location_and_fails_the_run_naming_the_setting(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    from chat_agents_dagster_tests.dagster_helpers import definitions, run_job

    monkeypatch.setenv("DESTINATION_TYPE", "nosuchdb")
    defs = definitions()  # the destination is the run's to resolve, not the code location's

    with dg.instance_for_test() as instance:
        result = run_job(defs, instance)

    assert not result.success
    failure = result.failure_data_for_node("chat_agents_load")
    assert failure is not None and failure.error is not None
    message = failure.error.to_string()
    assert "destination_type is 'nosuchdb'" in message and "DESTINATION_TYPE" in message
    assert server.stats.total() == 0
    assert not (isolated / "warehouse.duckdb").exists()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://127.0.0.1:notaport/v1", "has a port that is not a number"),
        ("http:///v1", "is not an http(s) URL"),
        ("https://api.mistral.ai/v1?key=1", "has a query or fragment"),
        ("https://api.mistral.ai /v1", "contains white space"),
        ("ftp://someone:pass-never-shown@api.mistral.ai/v1", "is not an http(s) URL"),
    ],
)
def test_a_malformed_base_url_fails_before_any_request_naming_the_setting(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", value)

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    error = failure_of(failure.value, ChatAgentsConfigError)
    assert says in str(error)
    assert "SOURCES__CHAT_AGENTS_SOURCE__BASE_URL" in str(error)
    assert "pass-never-shown" not in "".join(traceback.format_exception(failure.value))
    assert server.stats.total() == 0


def test_a_base_url_that_is_not_the_api_root_fails_at_the_first_answers_naming_the_setting(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", f"{server.base_url}/agents")

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    error = failure_of(failure.value, ApiNotFoundError)
    assert f"Neither agent listing exists at {server.base_url}/agents" in str(error)
    assert "SOURCES__CHAT_AGENTS_SOURCE__BASE_URL" in str(error)
    assert server.stats.total() == 2  # the cursor listing, then the legacy one


def test_a_page_size_that_is_not_a_number_fails_before_any_request_naming_the_setting(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__VERSIONS_PAGE_SIZE", "lots")

    with pytest.raises(ConfigValueCannotBeCoercedException, match="versions_page_size"):
        load()

    assert server.stats.total() == 0


# The warehouse's own limits


def recorded_states(database: Path) -> list[tuple[object, ...]]:
    """The state rows of loads `_dlt_loads` records: the only ones dlt restores."""
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(
            f"SELECT * FROM {DATASET_NAME}._dlt_pipeline_state WHERE _dlt_load_id IN"
            f" (SELECT load_id FROM {DATASET_NAME}._dlt_loads) ORDER BY _dlt_load_id"
        ).fetchall()


def test_duckdb_out_of_its_memory_limit_fails_naming_the_setting_and_loads_no_row(
    server: SandboxServer, loaded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "16MB"}'
    )
    before, states = snapshot(loaded), recorded_states(loaded)

    with pytest.raises(DuckDbOutOfMemoryError) as failure:
        load()

    assert "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG" in str(failure.value)
    assert "Out of Memory" in str(failure.value.__cause__)
    # Every table and dlt's record of loads are as they were. dlt may have stored the run's schema
    # and, depending on which job failed first, a state row; no recorded load has that state, so
    # no run restores it.
    after = snapshot(loaded)
    bookkeeping = {"_dlt_version", "_dlt_pipeline_state"}
    assert {t: rows for t, rows in after.items() if t not in bookkeeping} == {
        t: rows for t, rows in before.items() if t not in bookkeeping
    }
    assert recorded_states(loaded) == states
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG")
    pipeline, _ = load()
    assert_equals_truth(pipeline, server.world)
