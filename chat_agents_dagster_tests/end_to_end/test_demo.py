"""The README's first command: the sandbox plus chat_agents_job through Dagster, with a summary."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from chat_agents_dagster.tables import TABLES


def test_the_demo_runs_the_job_through_dagster_and_prints_tables_rows_and_checks(
    isolated: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DESTINATION__DUCKDB__CREDENTIALS"}
    command = [sys.executable, "-m", "chat_agents_dagster.devtools.demo", "--agents", "15"]
    result = subprocess.run(command, cwd=isolated, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "chat_agents_job succeeded" in out
    assert "chat_agents_data.agents                        15" in out
    for table in TABLES:
        assert f"chat_agents_data.{table.name} " in out
    assert " 0 failed" in out and "Checks: 0 passed" not in out
    assert (isolated / "chat_agents.duckdb").exists()


def test_the_demo_loads_several_workspaces_side_by_side(isolated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DESTINATION__DUCKDB__CREDENTIALS"}
    command = [
        sys.executable,
        "-m",
        "chat_agents_dagster.devtools.demo",
        "--agents",
        "12",
        "--workspaces",
        "eu,us",
    ]
    result = subprocess.run(command, cwd=isolated, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for workspace in ("default", "eu", "us"):
        assert f"chat_agents_job for workspace {workspace} succeeded" in out, out
    # Each workspace's run counts its own rows: 12 agents each, three times over.
    assert out.count("chat_agents_data.agents                        12") == 3, out
    assert out.count(" 0 failed") == 3
    with duckdb.connect(str(isolated / "chat_agents.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "SELECT workspace, COUNT(*) FROM chat_agents_data.agents GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("default", 12), ("eu", 12), ("us", 12)]
