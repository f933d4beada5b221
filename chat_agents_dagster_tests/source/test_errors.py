"""What the API's errors do to a run: a refused key stops it at once, a vanished agent is skipped,
rate limits and server errors are retried within a bound."""

import logging
import time
import traceback
from pathlib import Path

import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import ApiAuthError, ChatAgentsConfigError
from chat_agents_dagster_tests.helpers import API_KEY, error_chain, load, point_at, query


def warehouse_tables(directory: Path) -> list[str]:
    path = directory / "warehouse.duckdb"
    if not path.exists():
        return []
    with duckdb.connect(str(path)) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'chat_agents_data'"
        ).fetchall()
    return [row[0] for row in rows]


def test_a_refused_key_fails_at_once_names_the_setting_and_never_echoes_the_key(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    isolated: Path,
) -> None:
    wrong_key = "sk-wrong-key-that-must-not-leak-42"
    point_at(sandbox, monkeypatch.setenv, key=wrong_key)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    text = "".join(traceback.format_exception(failure.value))
    assert any(isinstance(e, ApiAuthError) for e in error_chain(failure.value))
    assert "SOURCES__CHAT_AGENTS_SOURCE__API_KEY" in text
    assert "api_key in .dlt/secrets.toml" in text
    assert wrong_key not in text
    assert wrong_key not in caplog.text
    assert sandbox.stats.total() == 1  # no retry of a 401
    assert warehouse_tables(isolated) == []


def test_a_forbidden_answer_is_an_auth_error_too(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    sandbox.fail_next(1, status=403)

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    assert any(isinstance(e, ApiAuthError) for e in error_chain(failure.value))
    assert sandbox.stats.total() == 1


def test_a_run_without_any_key_fails_before_a_request_naming_every_setting(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", sandbox.base_url)

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    error = next(e for e in error_chain(failure.value) if isinstance(e, ChatAgentsConfigError))
    for setting in ("[sources.chat_agents_source] api_key", "SOURCES__CHAT_AGENTS_SOURCE__API_KEY"):
        assert setting in str(error)
    assert "MISTRAL_API_KEY" in str(error)
    assert sandbox.stats.total() == 0


def test_the_sdk_variable_mistral_api_key_is_accepted(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__CHAT_AGENTS_SOURCE__BASE_URL", sandbox.base_url)
    monkeypatch.setenv("MISTRAL_API_KEY", API_KEY)

    pipeline, _ = load()

    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agents")[0][0] == len(
        sandbox.world.agents()
    )


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("AGENTS_PAGE_SIZE", "1001", "agents_page_size is 1001; the API accepts 1 to 1000"),
        ("VERSIONS_PAGE_SIZE", "0", "versions_page_size is 0; the API accepts 1 to 100"),
        ("BASE_URL", "api.mistral.ai/v1", "is not an http(s) URL"),
    ],
)
def test_a_bad_setting_fails_before_any_request_and_names_the_setting(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    value: str,
    says: str,
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv(f"SOURCES__CHAT_AGENTS_SOURCE__{setting}", value)

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    error = next(e for e in error_chain(failure.value) if isinstance(e, ChatAgentsConfigError))
    assert says in str(error)
    assert f"SOURCES__CHAT_AGENTS_SOURCE__{setting}" in str(error)
    assert sandbox.stats.total() == 0


def test_an_agent_deleted_between_listing_and_detail_is_skipped_with_a_warning(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    listed = {agent["id"] for agent in sandbox.world.agents()}
    deleted: list[str] = []

    def delete_first_detailed_agent(server: SandboxServer, params: dict[str, str]) -> None:
        server.world.delete_agent(params["agent_id"])
        deleted.append(params["agent_id"])

    sandbox.on_request("GET /v1/agents/{agent_id}", delete_first_detailed_agent)
    caplog.set_level(logging.WARNING)

    pipeline, _ = load()

    assert len(deleted) == 1
    assert {row[0] for row in query(pipeline, "SELECT id FROM {dataset}.agents")} == listed
    details = {row[0] for row in query(pipeline, "SELECT id FROM {dataset}.agent_detail")}
    assert details == listed - set(deleted)
    assert f"Agent {deleted[0]} disappeared during the run" in caplog.text


def test_a_burst_of_429s_is_waited_out_as_retry_after_asks(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    sandbox.fail_next(2, status=429, route="GET /v1/agents/pages", headers={"Retry-After": "1"})

    started = time.monotonic()
    pipeline, stats = load()
    elapsed = time.monotonic() - started

    assert stats.by_status[429] == 2
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agents")[0][0] == len(
        sandbox.world.agents()
    )
    # Backoff alone would wait about 0.03 s (factor 0.01); two waits of Retry-After: 1 take 2 s.
    assert elapsed >= 2.0


def test_a_burst_of_server_errors_is_retried_and_loses_nothing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    sandbox.fail_next(3, status=503, route="GET /v1/agents/{agent_id}/versions")
    sandbox.fail_next(1, status=502, route="GET /v1/agents/pages")

    pipeline, stats = load()

    assert stats.by_status[503] == 3 and stats.by_status[502] == 1
    truth = sum(len(sandbox.world.versions(a["id"])) for a in sandbox.world.agents())
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agent_versions")[0][0] == truth


def test_server_errors_that_persist_fail_the_run_after_the_retry_bound(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    sandbox.fail_next(50, status=500, route="GET /v1/agents/pages")

    with pytest.raises(PipelineStepFailed) as failure:
        load()

    assert "answered 500 to GET /agents/pages" in str(failure.value)
    assert sandbox.stats.count("GET /v1/agents/pages") == 3
    assert warehouse_tables(isolated) == []
