"""Secrets never leave the run: the API key and the connector credentials in the agents' tools
appear in no log line, stdout or stderr, Dagster event, metadata value, warehouse table (dlt's own
and nested ones included, the compressed pipeline state decoded), pipeline working file or Dagster
instance file, after a run that succeeds and after one whose key is refused.

The scanner reads each kind of storage the way its owner does (SQLite and DuckDB by query, dlt's
state decompressed, gzip unpacked) because a byte search of those files can miss a string a
database compressed or split across pages; a self-test plants secrets in each and must find them.
"""

import binascii
import gzip
import json
import logging
import re
import sqlite3
import traceback
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
import duckdb
import pytest
import requests
from dlt.common.utils import compressed_b64decode, compressed_b64encode
from dlt.pipeline.exceptions import PipelineStepFailed

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import rows as row_shapes
from chat_agents_dagster.source.rows import REDACTED
from chat_agents_dagster.tables import DATASET_NAME, PIPELINE_NAME
from chat_agents_dagster_tests.dagster_helpers import definitions
from chat_agents_dagster_tests.helpers import API_KEY, load, point_at

WRONG_KEY = "sk-wrong-fedcba9876543210-recognisable"
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# Loggers whose records the instance also stores as events, as a deployment would configure it.
INSTANCE_YAML = """
python_logs:
  python_log_level: INFO
  managed_python_loggers: [chat_agents_dagster]
telemetry:
  enabled: false
"""


def connector_credentials(world: World) -> dict[str, str]:
    """Every `authorization.value` the sandbox serves, labelled by where it is."""
    found: dict[str, str] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            auth = value.get("authorization")
            secret = auth.get("value") if isinstance(auth, dict) else None
            if isinstance(secret, str) and secret not in found:
                found[secret] = f"connector credential #{len(found) + 1} (agent {where})"
            for item in value.values():
                walk(item, where)
        elif isinstance(value, list):
            for item in value:
                walk(item, where)

    for agent in world.agents():
        walk(agent, agent["id"])
        walk(world.versions(agent["id"]), agent["id"])
    return found


def _unpacked(decode: Callable[[Any], bytes], value: str | bytes) -> bytes | None:
    try:
        return decode(value)
    except (binascii.Error, zlib.error):
        return None


class Haystack:
    """Every text a run left behind, each with where it was found."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        # latin-1 maps every byte to one character, so an ASCII secret in binary data still matches.
        text = text.decode("latin-1") if isinstance(text, bytes) else text
        self.texts.append((where, text))
        # dlt stores its pipeline state zlib-compressed and base64-encoded (`_dlt_pipeline_state`,
        # load packages): decode every such blob, wherever it is.
        for blob in BASE64_BLOB.findall(text):
            decoded = _unpacked(compressed_b64decode, blob)
            if decoded is not None:
                self.add(f"{where} (decoded)", decoded)

    def add_tree(self, root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add_file(path)

    def add_file(self, path: Path) -> None:
        data = path.read_bytes()
        self.add(str(path), data)
        if data.startswith(b"SQLite format 3\x00"):
            self._add_sqlite(path)
        elif data[8:12] == b"DUCK":
            self._add_duckdb(path)
        elif data.startswith(b"\x1f\x8b"):
            self.add(f"{path} (gunzipped)", gzip.decompress(data))

    def _add_sqlite(self, path: Path) -> None:
        # By query: a long value spills into overflow pages, where a byte search can miss it.
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                records = connection.execute(f'SELECT * FROM "{table}"').fetchall()
                self.add(f"{path} table {table}", repr(records))
                # Dagster keeps job snapshots zlib-compressed.
                for cell in (c for record in records for c in record if isinstance(c, bytes)):
                    inflated = _unpacked(zlib.decompress, cell)
                    if inflated is not None:
                        self.add(f"{path} table {table} (inflated)", inflated)
        connection.close()

    def _add_duckdb(self, path: Path) -> None:
        # By query: DuckDB compresses strings in its file.
        with duckdb.connect(str(path), read_only=True) as connection:
            tables = connection.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
            ).fetchall()
            for schema, table in tables:
                records = connection.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                self.add(f"{path} table {schema}.{table}", repr(records))

    def add_events(self, instance: dg.DagsterInstance) -> None:
        """Each run, each of its events whole, and each metadata value on its own."""
        for run in instance.get_runs():
            self.add(f"run {run.run_id}", dg.serialize_value(run))
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                where = f"event {event.event_type_value if event else 'log'} of {run.run_id}"
                self.add(where, dg.serialize_value(entry))
                self.add(where, entry.message)
                data = event.event_specific_data if event else None
                metadata = getattr(data, "metadata", None) or getattr(
                    getattr(data, "materialization", None), "metadata", None
                )
                for name, value in (metadata or {}).items():
                    self.add(f"metadata {name} of {event and event.asset_key}", repr(value.value))

    def add_exception(self, error: BaseException) -> None:
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            where = f"raised {type(current).__name__}"
            self.add(where, "".join(traceback.format_exception(current)))
            self.add(where, repr(current.args) + repr(vars(current)))
            current = current.__cause__ or current.__context__

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        """`where: what` for every text holding a secret or any 18 characters of one."""
        pieces = fragments(secrets)
        return sorted(
            {f"{where}: {label}" for where, text in self.texts for p, label in pieces if p in text}
        )


def fragments(secrets: dict[str, str], width: int = 12) -> list[tuple[str, str]]:
    """Each secret's windows of `width` characters, every `width // 2`, so that any part of it
    `1.5 * width` long (a truncated or partly masked echo) holds a whole window. A window that two
    secrets share (a common prefix such as `conn-secret-`) tells nothing and is left out."""
    windows = {
        secret: {secret[i : i + width] for i in range(0, len(secret) - width + 1, width // 2)}
        | {secret[-width:]}
        for secret in secrets
    }
    shared = {w for s, ws in windows.items() for w in ws for o in windows if o != s and w in o}
    return [(w, label) for s, label in secrets.items() for w in windows[s] - shared]


@pytest.fixture
def sandbox(start_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A world small enough for a quick run, with four connector credentials among its tools."""
    return start_sandbox(World.generate(agents=12, seed=7, max_versions=2, max_aliases=2))


@pytest.fixture
def instance(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """A persistent instance in DAGSTER_HOME (SQLite event log, local compute logs), as deployed."""
    home = isolated / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG; dlt's logger does not propagate, so the capture joins it directly."""
    caplog.set_level(logging.DEBUG)
    dlt_logger = logging.getLogger("dlt")
    level = dlt_logger.level
    dlt_logger.addHandler(caplog.handler)
    dlt_logger.setLevel(logging.DEBUG)
    yield caplog
    dlt_logger.removeHandler(caplog.handler)
    dlt_logger.setLevel(level)


def _everything(
    haystack: Haystack,
    instance: dg.DagsterInstance,
    logs: pytest.LogCaptureFixture,
    output: pytest.CaptureFixture[str],
    directory: Path,
) -> Haystack:
    out, err = output.readouterr()
    haystack.add("stdout", out)
    haystack.add("stderr", err)
    haystack.add("log lines", logs.text)
    for record in logs.records:
        haystack.add(f"log record of {record.name}", repr(record.__dict__))
    haystack.add_events(instance)
    pipeline = dlt.attach(PIPELINE_NAME)
    haystack.add("pipeline.state", json.dumps(pipeline.state, default=str))
    haystack.add("pipeline.last_trace", repr(pipeline.last_trace))
    # dlt's working directory, the DuckDB warehouse and DAGSTER_HOME all live under the test's
    # directory (see isolate_environment and the instance fixture).
    haystack.add_tree(directory)
    return haystack


def test_a_full_run_leaves_no_api_key_or_connector_credential_anywhere(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
    captured_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    isolated: Path,
) -> None:
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    point_at(sandbox, monkeypatch.setenv)
    credentials = connector_credentials(sandbox.world)
    assert len(credentials) >= 3
    secrets = {API_KEY: "the API key", **credentials}
    # The API serves the credentials, so the run does read them.
    served = Haystack()
    served.add(
        "API answer", requests.get(f"{sandbox.base_url}/agents", headers=AUTH, timeout=10).text
    )
    assert served.leaks(credentials)

    result = definitions().resolve_job_def("chat_agents_job").execute_in_process(instance=instance)

    assert result.success
    haystack = _everything(Haystack(), instance, captured_logs, capfd, isolated)
    # The scan saw the run: events, metadata, Dagster's storage and compute logs, dlt's working
    # files and decoded state, and the tools tables, whose credentials are redacted.
    for where in [
        "event ASSET_MATERIALIZATION",
        "event ASSET_CHECK_EVALUATION",
        "metadata rows_loaded",
        "dagster_home/history/runs/index.db table event_logs",
        "compute_logs/",
        "dlt_data/pipelines/chat_agents_pipeline/trace.pickle",
        "dlt_data/pipelines/chat_agents_pipeline/schemas/",
        "_dlt_pipeline_state (decoded)",
    ]:
        assert any(where in seen for seen, _ in haystack.texts), where
    tools = [t for w, t in haystack.texts if w.endswith(f"{DATASET_NAME}.agent_detail__tools")]
    assert tools and REDACTED in tools[0]
    assert haystack.leaks(secrets) == []


def test_a_refused_key_is_in_no_error_event_or_log(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
    captured_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    isolated: Path,
) -> None:
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    point_at(sandbox, monkeypatch.setenv, key=WRONG_KEY)

    # In process, Dagster re-raises what the op raised: dlt's error, wrapping the API's.
    with pytest.raises(PipelineStepFailed) as raised:
        definitions().resolve_job_def("chat_agents_job").execute_in_process(instance=instance)

    haystack = Haystack()
    haystack.add_exception(raised.value)
    haystack = _everything(haystack, instance, captured_logs, capfd, isolated)
    failures = [
        entry.dagster_event.step_failure_data.error
        for run in instance.get_runs()
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if entry.dagster_event is not None
    ]
    assert len(failures) == 1 and failures[0] is not None
    failure = failures[0].to_string()
    assert "answered 401" in failure
    assert "SOURCES__CHAT_AGENTS_SOURCE__API_KEY" in failure
    assert "answered 401" in "".join(traceback.format_exception(raised.value))
    assert sandbox.stats.total() == 1
    assert haystack.leaks({WRONG_KEY: "the refused API key", API_KEY: "the server's key"}) == []


def test_the_scanner_finds_a_secret_wherever_it_is_planted(tmp_path: Path) -> None:
    credential = "conn-secret-00112233445566778899aabbccddeeff"
    secrets = {API_KEY: "key", credential: "credential"}
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "plain.log").write_text(f"Authorization: Bearer {API_KEY}")
    (planted / "package.jsonl.gz").write_bytes(
        gzip.compress(f'{{"value": "{credential}"}}'.encode())
    )
    # Long enough to spill into SQLite overflow pages, where a byte search could miss it.
    with sqlite3.connect(planted / "events.db") as connection:
        connection.execute("CREATE TABLE event_logs (event TEXT)")
        connection.execute("INSERT INTO event_logs VALUES (?)", ("x" * 10_000 + API_KEY,))
    connection.close()
    with duckdb.connect(str(planted / "warehouse.duckdb")) as warehouse:
        warehouse.execute("CREATE SCHEMA d")
        warehouse.execute("CREATE TABLE d._dlt_pipeline_state (state VARCHAR)")
        # Encoded as dlt encodes the pipeline state it stores.
        state = compressed_b64encode(json.dumps({"tools": [credential]}).encode())
        warehouse.execute("INSERT INTO d._dlt_pipeline_state VALUES (?)", [state])
    haystack = Haystack()
    haystack.add_tree(planted)
    haystack.add("log", "key sk-test-0123456789abcdef-rec... refused")
    with pytest.raises(ValueError) as raised:
        raise ValueError("refused") from RuntimeError(f"header Bearer {API_KEY}")
    haystack.add_exception(raised.value)

    found = haystack.leaks(secrets)

    assert {
        f"{planted}/plain.log: key",
        f"{planted}/package.jsonl.gz (gunzipped): credential",
        f"{planted}/events.db table event_logs: key",
        f"{planted}/warehouse.duckdb table d._dlt_pipeline_state (decoded): credential",
        "log: key",
        "raised RuntimeError: key",
    } <= set(found)


def test_the_scan_catches_credentials_a_load_would_store_unredacted(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    # The scan of a real warehouse, nested tables included, can fail: without the redaction the
    # connector credentials land in the tools tables and the scan names them.
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setattr(row_shapes, "_shape_tool", lambda tool: tool)
    credentials = connector_credentials(sandbox.world)

    load()

    haystack = Haystack()
    haystack.add_tree(isolated)
    found = haystack.leaks(credentials)
    tables = {where.split(" table ")[-1].split(":")[0] for where in found if " table " in where}
    assert f"{DATASET_NAME}.agent_detail__tools" in tables
    assert {label for where in found for label in [where.split(": ", 1)[1]]} == set(
        credentials.values()
    )
