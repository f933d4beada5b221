"""Shared fixtures: every test runs in its own directory, with its own dlt state and DuckDB file,
against a sandbox API on loopback; nothing reads the repository's .dlt/ or sends telemetry."""

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy.engine import URL, make_url

from chat_agents_dagster.defs.deployment import (
    ALERT_WEBHOOK_URL,
    DAGSTER_URL,
    SLACK_API_URL,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    TEAMS_WEBHOOK_URL,
)
from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster_tests.helpers import API_KEY, isolate_environment, point_at
from chat_agents_dagster_tests.receiver import (
    SLACK_API_PATH,
    TEAMS_PATH,
    WEBHOOK_PATH,
    Receiver,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_environment(tmp_path, monkeypatch.setenv, monkeypatch.delenv)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start a sandbox on an ephemeral port: `start_sandbox(world, **SandboxConfig fields)`."""
    servers: list[SandboxServer] = []

    def start(world: World, **config: Any) -> SandboxServer:
        config.setdefault("api_key", API_KEY)
        server = SandboxServer(world, SandboxConfig(**config), host="127.0.0.1", port=0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A small world with every variety of agent in it."""
    return start_sandbox(World.generate(agents=30, seed=7, max_versions=4, max_aliases=3))


# PostgreSQL: a real server, reached at CHAT_AGENTS_TEST_POSTGRES_URL (default: what
# .ci/postgres.sh creates). The role needs CREATEDB: each test gets a database of its own, so
# tests, and test runs on one server at the same time, never see each other's tables.
POSTGRES_URL_VARIABLE = "CHAT_AGENTS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "CHAT_AGENTS_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql://chat_agents:chat_agents@127.0.0.1:5432/chat_agents"


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The server's URL. Skips, loudly, only when nothing listens there (and fails instead where
    CI requires a server); a server that answers but refuses the role fails the tests."""
    url = make_url(os.environ.get(POSTGRES_URL_VARIABLE) or DEFAULT_POSTGRES_URL)
    try:
        socket.create_connection((url.host or "localhost", url.port or 5432), timeout=5).close()
    except OSError as error:
        message = (
            f"NO POSTGRESQL, the PostgreSQL tests did NOT run: nothing answers at"
            f" {url.render_as_string(hide_password=True)} ({error}). Start a server with"
            f" `sudo bash .ci/postgres.sh` or point {POSTGRES_URL_VARIABLE} at one."
        )
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE, "").strip().lower() in ("1", "true"):
            pytest.fail(f"{message} {REQUIRE_POSTGRES_VARIABLE} is set: failing, not skipping.")
        pytest.skip(message)
    psycopg2.connect(url.render_as_string(hide_password=False), connect_timeout=5).close()
    return url


@pytest.fixture
def new_postgres_database(postgres_server: URL) -> Iterator[Callable[[], URL]]:
    """`new_postgres_database()`: a new, empty database on the server, dropped after the test."""
    admin = psycopg2.connect(postgres_server.render_as_string(hide_password=False))
    admin.autocommit = True  # CREATE and DROP DATABASE cannot run in a transaction
    created: list[str] = []

    def create() -> URL:
        name = f"chat_agents_test_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return postgres_server.set(database=name)

    try:
        yield create
        with admin.cursor() as cursor:
            for name in created:
                # A connection pool the test left open must not keep the database alive: end this
                # role's sessions on it. Not `DROP DATABASE ... WITH (FORCE)`: that also signals an
                # autovacuum worker busy on the new tables, which a role without pg_signal_backend
                # may not do (CI failed on it); a plain DROP cancels autovacuum by itself.
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND usename = current_user AND pid <> pg_backend_pid()",
                    (name,),
                )
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.close()


@pytest.fixture
def postgres_database(new_postgres_database: Callable[[], URL]) -> URL:
    return new_postgres_database()


@pytest.fixture
def postgres_warehouse(postgres_database: URL, monkeypatch: pytest.MonkeyPatch) -> URL:
    """The pipeline loads into PostgreSQL, selected by configuration alone, as a user would."""
    monkeypatch.setenv("DESTINATION_TYPE", "postgres")
    monkeypatch.setenv(
        "DESTINATION__POSTGRES__CREDENTIALS",
        postgres_database.render_as_string(hide_password=False),
    )
    return postgres_database


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, isolated: Path) -> str:
    """The test runs twice: into DuckDB (the shipped configuration) and into PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_warehouse")
    return str(request.param)


@pytest.fixture
def world_server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    """A 40-agent world for runs that change it, with the environment pointing at it."""
    server = start_sandbox(World.generate(agents=40, seed=21, max_versions=3, max_aliases=3))
    point_at(server, monkeypatch.setenv)
    return server


SLACK_TEST_TOKEN = "xoxb-test-slack-token-recognisable"
DAGSTER_TEST_URL = "http://dagster.example.test:3000"


@pytest.fixture
def alert_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver on loopback, with the environment configuring all three alert channels to
    post to it and the Dagster UI's address set for links."""
    receiver = Receiver(slack_token=SLACK_TEST_TOKEN).start()
    monkeypatch.setenv(ALERT_WEBHOOK_URL, receiver.url(WEBHOOK_PATH))
    monkeypatch.setenv(SLACK_TOKEN, SLACK_TEST_TOKEN)
    monkeypatch.setenv(SLACK_CHANNEL, "#data-platform")
    monkeypatch.setenv(SLACK_API_URL, receiver.url(SLACK_API_PATH))
    monkeypatch.setenv(TEAMS_WEBHOOK_URL, receiver.url(TEAMS_PATH))
    monkeypatch.setenv(DAGSTER_URL, DAGSTER_TEST_URL)
    yield receiver
    receiver.stop()
