"""What lands in the warehouse: free-form objects as JSON, unknown fields and tool types kept,
credentials never in clear, and a schema that does not grow with users' tool definitions."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source.configuration import AGENTS_PAGE_SIZE
from chat_agents_dagster.source.pipeline import DEFAULT_DUCKDB_FILE, DUCKDB_SETTINGS
from chat_agents_dagster.source.rows import REDACTED
from chat_agents_dagster_tests.helpers import API_KEY, columns, load, point_at, query, table_names

REPO = Path(__file__).resolve().parents[2]


def all_snapshots(world: World) -> list[dict[str, Any]]:
    return [v for a in world.agents() for v in world.versions(a["id"])] + world.agents()


def credentials(world: World) -> set[str]:
    return {
        tool["authorization"]["value"]
        for snapshot in all_snapshots(world)
        for tool in snapshot.get("tools") or []
        if isinstance(tool.get("authorization"), dict) and tool["authorization"].get("value")
    }


def every_value(pipeline: dlt.Pipeline) -> str:
    dumps = []
    for table in sorted(table_names(pipeline)):
        dumps.append(json.dumps(query(pipeline, f"SELECT * FROM {{dataset}}.{table}"), default=str))
    return "\n".join(dumps)


def test_free_form_objects_are_json_columns_not_flattened(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    pipeline, _ = load()
    schema = pipeline.default_schema

    for table in ("agents", "agent_detail", "agent_versions", "agent_version_detail"):
        cols = schema.get_table_columns(table)
        assert cols["metadata"]["data_type"] == "json"
        assert cols["completion_args__response_format__json_schema"]["data_type"] == "json"
        assert cols["completion_args__stop"]["data_type"] == "json"
        assert not [c for c in cols if c.startswith(("metadata__", "completion_args__stop__"))]
        tool_cols = schema.get_table_columns(f"{table}__tools")
        for column in ("function__parameters", "tool_configuration", "library_ids"):
            assert tool_cols[column]["data_type"] == "json"
        assert not [c for c in tool_cols if c.startswith("function__parameters__")]
        guardrail_cols = schema.get_table_columns(f"{table}__guardrails")
        for version in ("v1", "v2"):
            column = f"moderation_llm_{version}__custom_category_thresholds"
            assert guardrail_cols[column]["data_type"] == "json"
    assert "agents__versions" in table_names(pipeline)


def test_unknown_fields_and_unknown_tool_types_are_kept(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    known_tool_types = {
        "function",
        "web_search",
        "web_search_premium",
        "code_interpreter",
        "image_generation",
        "document_library",
        "connector",
    }
    agents = sandbox.world.agents()
    unknown_types = {
        tool["type"]
        for a in agents
        for tool in a["tools"] or []
        if tool["type"] not in known_tool_types
    }
    known_fields = set(dlt_known_agent_fields())
    unknown_fields = {field for a in agents for field in a if field not in known_fields}
    assert unknown_types and unknown_fields

    pipeline, _ = load()

    loaded_types = {row[0] for row in query(pipeline, "SELECT type FROM {dataset}.agents__tools")}
    assert unknown_types <= loaded_types
    loaded_names = set(columns(pipeline, "agents")) | {
        t.removeprefix("agents__") for t in table_names(pipeline)
    }
    for field in unknown_fields:
        assert any(name == field or name.startswith(f"{field}__") for name in loaded_names), field


def dlt_known_agent_fields() -> list[str]:
    from mistralai.client.models import Agent

    return [field.alias or name for name, field in Agent.model_fields.items()]


def test_no_credential_is_stored_in_clear_anywhere(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    secrets = credentials(sandbox.world)
    assert secrets

    pipeline, _ = load()

    everything = every_value(pipeline)
    assert [secret for secret in secrets if secret in everything] == []
    assert API_KEY not in everything
    redacted = query(
        pipeline,
        "SELECT COUNT(*) FROM {dataset}.agents__tools WHERE authorization__value = '"
        + REDACTED
        + "'",
    )
    assert redacted[0][0] > 0


def test_a_new_function_tool_with_new_parameter_names_adds_no_column(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    pipeline, _ = load()
    before = {table: columns(pipeline, table) for table in table_names(pipeline)}

    agent_id = sandbox.world.agents()[0]["id"]
    sandbox.world.update_agent(
        agent_id,
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "lookup_invoice_zz",
                    "description": "never seen before",
                    "strict": True,
                    "parameters": {
                        "type": "object",
                        "properties": {"brand_new_field_q": {"type": "string"}},
                        "required": ["brand_new_field_q"],
                    },
                },
            }
        ],
        metadata={"never_seen_key_x": {"deep": [1, 2]}},
    )
    pipeline, _ = load()
    after = {table: columns(pipeline, table) for table in table_names(pipeline)}

    assert after == before
    stored = query(
        pipeline,
        "SELECT function__parameters FROM {dataset}.agents__tools"
        " WHERE function__name = 'lookup_invoice_zz'",
    )
    assert "brand_new_field_q" in str(stored[0][0])


def test_importing_the_source_does_not_import_dagster() -> None:
    code = (
        "import sys, chat_agents_dagster.source, chat_agents_dagster.source.__main__;"
        " sys.exit('dagster' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_standalone_run_loads_and_prints_what_it_loaded(
    sandbox: SandboxServer, isolated: Path
) -> None:
    env = {
        **os.environ,
        "SOURCES__CHAT_AGENTS_SOURCE__BASE_URL": sandbox.base_url,
        "SOURCES__CHAT_AGENTS_SOURCE__API_KEY": API_KEY,
    }
    command = [sys.executable, "-m", "chat_agents_dagster.source", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=isolated)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    world = sandbox.world
    assert summary["rows"]["agents"] == len(world.agents())
    assert summary["rows"]["agent_versions"] == sum(
        len(world.versions(a["id"])) for a in world.agents()
    )
    assert summary["requests"]["total"] == sandbox.stats.total()
    assert (isolated / "warehouse.duckdb").exists()


def test_the_committed_dlt_config_turns_telemetry_off_and_loads_without_error() -> None:
    config = tomllib.loads((REPO / ".dlt" / "config.toml").read_text())
    assert config["runtime"]["dlthub_telemetry"] is False
    assert config["sources"]["chat_agents_source"]["base_url"] == "https://api.mistral.ai/v1"
    assert config["sources"]["chat_agents_source"]["agents_page_size"] == AGENTS_PAGE_SIZE


def test_every_test_runs_with_the_shipped_dlt_config(isolated: Path) -> None:
    shipped = (REPO / ".dlt" / "config.toml").read_text()
    assert (isolated / ".dlt" / "config.toml").read_text() == shipped
    config = tomllib.loads(shipped)
    # What dlt itself resolves in this test's project: the shipped values, not dlt's defaults.
    assert dlt.config["load.workers"] == config["load"]["workers"]
    assert (
        dlt.config["sources.chat_agents_source.extract.workers"]
        == config["sources"]["chat_agents_source"]["extract"]["workers"]
    )


def test_the_duckdb_file_defaults_to_chat_agents_duckdb_and_follows_the_dlt_setting(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS")
    load()
    assert (isolated / "chat_agents.duckdb").exists()

    elsewhere = isolated / "elsewhere" / "agents.duckdb"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(elsewhere))
    load()
    assert elsewhere.exists()


def duckdb_shows(setting: str, value: str) -> Any:
    """How DuckDB reports `value` of `setting` once set (128MB reads back as 122.0 MiB)."""
    with duckdb.connect() as connection:
        connection.execute(f"SET {setting} = '{value}'")
        row = connection.execute(f"SELECT current_setting('{setting}')").fetchone()
    assert row is not None
    return row[0]


def duckdb_settings(pipeline: dlt.Pipeline) -> tuple[Any, ...]:
    return query(pipeline, "SELECT current_setting('memory_limit'), current_setting('threads')")[0]


@pytest.mark.parametrize("named", ["not at all", "whole", "field by field"])
def test_duckdb_is_bounded_by_default_however_its_file_is_named(
    named: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    database = isolated / "named.duckdb"
    if named == "whole":
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    elif named == "field by field":
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE", str(database))

    pipeline, _ = load()

    assert (isolated / DEFAULT_DUCKDB_FILE if named == "not at all" else database).exists()
    assert duckdb_settings(pipeline) == (
        duckdb_shows("memory_limit", DUCKDB_SETTINGS["memory_limit"]),
        DUCKDB_SETTINGS["threads"],
    )


def test_a_duckdb_file_named_by_its_own_fields_is_used_with_its_settings(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    database = isolated / "by_field.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE", str(database))
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "300MB"}'
    )

    pipeline, _ = load()

    assert database.exists()
    assert not (isolated / DEFAULT_DUCKDB_FILE).exists()
    # The user's setting wins; the defaults fill what it does not set.
    assert duckdb_settings(pipeline) == (
        duckdb_shows("memory_limit", "300MB"),
        DUCKDB_SETTINGS["threads"],
    )
    assert query(pipeline, "SELECT COUNT(*) FROM {dataset}.agents")[0][0] == len(
        sandbox.world.agents()
    )


def test_the_default_duckdb_file_is_the_one_in_the_working_directory_of_each_run(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    """dlt resolves a relative DuckDB path against the directory of the pipeline's first run, kept
    in its local state: a run from another directory must still use its own file."""
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    first, second = isolated / "first", isolated / "second"
    for directory in (first, second):
        directory.mkdir()
        monkeypatch.chdir(directory)
        load()

    for directory in (first, second):
        with duckdb.connect(str(directory / DEFAULT_DUCKDB_FILE), read_only=True) as connection:
            rows = connection.execute("SELECT COUNT(*) FROM chat_agents_data.agents").fetchone()
        assert rows == (len(sandbox.world.agents()),), directory


@pytest.mark.parametrize("file_setting", ["default file", "DESTINATION__DUCKDB__CREDENTIALS"])
def test_the_committed_writer_settings_are_the_ones_dlt_uses(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path, file_setting: str
) -> None:
    """`.dlt/config.toml` bounds dlt's writer buffers and turns off the compression of its files;
    a setting in a section dlt does not read there is silently ignored (the extraction's buffer
    once was). A process of its own: dlt reads config.toml once per process."""
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv("DLT_PROJECT_DIR", str(REPO))
    if file_setting == "default file":
        monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS")
    config = tomllib.loads((REPO / ".dlt" / "config.toml").read_text())

    result = subprocess.run(
        [sys.executable, "-m", "chat_agents_dagster_tests.spy_writers"],
        cwd=isolated,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # for chat_agents_dagster_tests
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )

    writers = {tuple(writer) for writer in json.loads(result.stdout.strip().splitlines()[-1])}
    extracting = config["sources"]["chat_agents_source"]["data_writer"]
    normalizing = config["normalize"]["data_writer"]
    expected = {
        # what extraction writes, and what normalization writes for DuckDB
        ("typed-jsonl", extracting["buffer_max_items"], not extracting["disable_compression"]),
        ("jsonl", normalizing["buffer_max_items"], not normalizing["disable_compression"]),
    }
    assert expected <= writers
    assert {size for _, size, _ in writers} <= {size for _, size, _ in expected}
    assert not any(compressed for _, _, compressed in writers)
