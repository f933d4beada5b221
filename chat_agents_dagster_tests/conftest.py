"""Shared fixtures: every test runs in its own directory, with its own dlt state and DuckDB file,
against a sandbox API on loopback; nothing reads the repository's .dlt/ or sends telemetry."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World
from chat_agents_dagster_tests.helpers import API_KEY, isolate_environment


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
