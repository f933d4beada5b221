"""An API outage through Dagster: the load asks Dagster to run it again later (RetryRequested),
as often and as far apart as the deployment says, and only for an outage: never for a refused
key, a bad setting, a wrong address or a warehouse out of memory, which a later try would meet
again."""

import socket
from collections.abc import Callable
from datetime import timedelta

import dagster as dg
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster_tests.dagster_helpers import api_observations, definitions, run_job
from chat_agents_dagster_tests.helpers import TEST_ENV, point_at
from chat_agents_dagster_tests.warehouse import assert_equals_truth

# Every attempt dlt's session makes at one request before it gives up (the tests' [runtime]).
ATTEMPTS = int(TEST_ENV["RUNTIME__REQUEST_MAX_ATTEMPTS"])
LISTING = "GET /v1/agents/pages"


def events(result: dg.ExecuteInProcessResult, kind: str) -> list[dg.DagsterEvent]:
    return [event for event in result.all_events if event.event_type_value == kind]


def load_failure(result: dg.ExecuteInProcessResult) -> str:
    """The load step's failure, with every error it wraps."""
    [failure] = [e for e in events(result, "STEP_FAILURE") if e.step_key == "chat_agents_load"]
    error = failure.step_failure_data.error
    assert error is not None
    text = []
    while error is not None:
        text.append(error.message)
        error = error.cause or error.context
    return "\n".join(text)


@pytest.fixture
def server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=15, seed=8, max_versions=3, max_aliases=2))
    point_at(server, monkeypatch.setenv)
    return server


def test_an_outage_that_ends_makes_the_run_try_again_later_and_end_exact(
    server: SandboxServer,
) -> None:
    # Down for exactly one try: every attempt dlt makes at the first listing request answers 503.
    server.fail_next(ATTEMPTS, status=503, route=LISTING)
    delay = timedelta(seconds=1)
    defs = definitions(outage_retries=2, outage_retry_delay=delay)

    result = run_job(defs, dg.DagsterInstance.ephemeral())

    assert result.success
    [retry] = events(result, "STEP_UP_FOR_RETRY")
    assert retry.step_key == "chat_agents_load"
    assert retry.step_retry_data.seconds_to_wait == delay.total_seconds()
    assert_equals_truth(make_pipeline(), server.world)
    # Each try observed the API: the first saw the outage and no complete listing.
    down, up = api_observations(result)
    assert down["api_answers_by_status"] == {"503": ATTEMPTS}
    assert (down["listing_complete"], down["data_version"]) == (False, None)
    assert up["listing_complete"] and up["data_version"]
    assert up["agents_listed"] == len(server.world.agents())


def test_an_api_that_stays_down_fails_the_run_after_the_configured_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Connections refused: a port nothing listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__API_KEY", "sk-unused")
    retries = 2

    result = run_job(
        definitions(outage_retries=retries, outage_retry_delay=timedelta(0)),
        dg.DagsterInstance.ephemeral(),
    )

    assert not result.success
    assert len(events(result, "STEP_UP_FOR_RETRY")) == retries
    # The step fails with the outage itself, which names the request and the settings.
    failure = load_failure(result)
    assert "The Mistral API gave no complete answer to GET /agents/pages" in failure
    assert "RUNTIME__REQUEST_MAX_ATTEMPTS" in failure
    assert len(api_observations(result)) == retries + 1


def test_an_outage_fails_at_once_when_the_deployment_asks_for_no_retry(
    server: SandboxServer,
) -> None:
    server.fail_next(ATTEMPTS, status=502, route=LISTING)

    result = run_job(definitions(outage_retries=0), dg.DagsterInstance.ephemeral())

    assert not result.success
    assert events(result, "STEP_UP_FOR_RETRY") == []
    assert "answered 502 to GET /agents/pages" in load_failure(result)


@pytest.mark.parametrize("fault", ["refused key", "bad setting", "wrong address", "duckdb memory"])
def test_what_a_later_try_would_meet_again_is_never_retried(
    fault: str,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defs = definitions(outage_retries=3, outage_retry_delay=timedelta(0))
    instance = dg.DagsterInstance.ephemeral()
    expected = {
        "refused key": "the API key was refused",
        "bad setting": "agents_page_size is 0",
        "wrong address": "answered 404",
        "duckdb memory": "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
    }[fault]
    if fault == "refused key":
        point_at(server, monkeypatch.setenv, key="sk-not-this-one")
    elif fault == "bad setting":
        monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__AGENTS_PAGE_SIZE", "0")
    elif fault == "wrong address":
        monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", server.root_url + "/v2")
    else:
        # A night of change, loaded into a DuckDB that has too little memory for it.
        assert run_job(defs, instance).success
        world = server.world
        for agent in world.agents()[:5]:
            world.update_agent(agent["id"], instructions=f"Changed tonight: {agent['id']}")
        world.create_agent(name="Born tonight", model="mistral-small-latest")
        monkeypatch.setenv(
            "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "16MB"}'
        )

    result = run_job(defs, instance)

    assert not result.success
    assert events(result, "STEP_UP_FOR_RETRY") == []
    assert expected in load_failure(result)
