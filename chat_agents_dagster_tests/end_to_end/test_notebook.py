"""The governance notebook (notebooks/agents.py) runs headless against a real load and pictures
what the sandbox holds: agents by model, tool types, versions over time, where aliases point, an
alias's history, what changed version by version and changes per week by kind."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline, run_load
from chat_agents_dagster_tests.dagster_helpers import definitions, run_job
from chat_agents_dagster_tests.helpers import load, point_at

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "agents.py"
VEGA_LITE = "application/vnd.vegalite.v6+json"


def notebook() -> ModuleType:
    """The notebook as a module, freshly executed (its cells run only in `app.run()`)."""
    spec = importlib.util.spec_from_file_location("agents_notebook", NOTEBOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook() -> dict[str, Any]:
    """Every cell, in marimo's own order; a cell that raises fails the test with its error."""
    _, defs = notebook().app.run()
    return dict(defs)


def chart_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a Vega-Lite chart draws (altair puts a chart's data in one named dataset)."""
    (rows,) = spec["datasets"].values()
    return list(rows)


def change_the_world(world: World) -> None:
    """A night's worth of change, deletions included, so that live-only counting is tested."""
    agents = world.agents()
    world.delete_agent(agents[0]["id"])
    world.update_agent(agents[1]["id"], model="model-of-one", tools=[{"type": "web_search"}])
    world.create_agent(name="Newcomer", model="model-of-one", tools=[{"type": "code_interpreter"}])
    with_aliases = [a["id"] for a in agents[2:] if world.aliases(a["id"])]
    world.delete_alias(with_aliases[0], world.aliases(with_aliases[0])[0]["alias"])
    world.set_alias(with_aliases[1], "production", 0)
    world.switch_version(with_aliases[2], 0)  # its aliases on later versions now point ahead


def points_at(version: int, active: int) -> str:
    if version == active:
        return "the active version"
    return "an older version" if version < active else "a newer version"


def test_the_charts_show_what_the_api_holds_for_live_agents(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    load()
    world = sandbox.world
    change_the_world(world)
    load()
    agents = world.agents()

    defs = run_notebook()

    by_model = {
        row["model"]: row["agents"] for row in chart_rows(defs["agents_by_model_chart"].to_dict())
    }
    assert by_model == Counter(agent["model"] for agent in agents)
    assert by_model["model-of-one"] == 2

    tools = {
        row["tool_type"]: (row["agents"], row["tools"])
        for row in chart_rows(defs["tool_types_chart"].to_dict())
    }
    tool_types = [[tool["type"] for tool in agent["tools"] or []] for agent in agents]
    agents_per_type = Counter(kind for kinds in tool_types for kind in set(kinds))
    tools_per_type = Counter(kind for kinds in tool_types for kind in kinds)
    assert tools == {kind: (agents_per_type[kind], tools_per_type[kind]) for kind in tools_per_type}

    # The sandbox's logical clock spans hours, so versions are counted per hour.
    assert defs["period"] == "hour"
    created = [
        pd.Timestamp(version["updated_at"]).floor("h")
        for agent in agents
        for version in world.versions(agent["id"])
    ]
    per_hour = {
        pd.Timestamp(row["period_start"]): row["versions"]
        for row in chart_rows(defs["versions_over_time_chart"].to_dict())
    }
    assert {hour: count for hour, count in per_hour.items() if count} == Counter(created)
    assert list(per_hour) == sorted(per_hour)
    assert set(pd.Series(list(per_hour)).diff().dropna()) <= {pd.Timedelta(hours=1)}

    truth = {
        (
            agent["id"],
            alias["alias"],
            alias["version"],
            points_at(alias["version"], agent["version"]),
        )
        for agent in agents
        for alias in world.aliases(agent["id"])
    }
    table = defs["aliases"]
    assert len(table) == len(truth)
    assert set(zip(table.agent_id, table.alias, table.version, table.points_at, strict=True)) == (
        truth
    )
    targets = {
        (row["alias"], row["points_at"]): row["agents"]
        for row in chart_rows(defs["alias_targets_chart"].to_dict())
    }
    assert targets == Counter((alias, where) for _, alias, _, where in truth)
    assert "a newer version" in {where for _, _, _, where in truth}

    counts = dict(zip(defs["agent_counts"].state, defs["agent_counts"].agents, strict=True))
    assert counts == {"live": len(agents), "deleted": 1}
    assert defs["live_versions"].versions.sum() == len(created)


def api_time(stamp: str) -> pd.Timestamp:
    return pd.Timestamp(stamp.replace("Z", "+00:00"))


def test_an_alias_timeline_the_changes_version_by_version_and_per_week_by_kind(
    warehouse: str, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Versions made in known weeks, each changing one kind of thing, and an alias moved between
    two runs of the Dagster job: the alias that moved most is shown first, with its intervals;
    its agent's versions with what each changed; each week's changes under their kind."""
    world = World()
    agent = world.create_agent(name="Support", model="mistral-small-latest")["id"]
    other = world.create_agent(name="Other", model="mistral-small-latest")["id"]
    weeks = [datetime(2026, 10, day, 9, tzinfo=UTC) for day in (6, 13, 20, 21)]
    edits: list[tuple[str, dict[str, Any]]] = [
        ("model", {"model": "mistral-large-latest"}),
        ("tools", {"tools": [{"type": "web_search"}]}),
        ("instructions", {"instructions": "Be brief."}),
        ("instructions", {"instructions": "Be brief and cite sources."}),
    ]
    for instant, (_, fields) in zip(weeks, edits, strict=True):
        world.advance_to(instant)
        world.update_agent(agent, **fields)
    first_target = world.set_alias(agent, "production", 1)
    world.set_alias(other, "canary", 0)
    point_at(start_sandbox(world), monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    world.advance_to(datetime.now(UTC))
    moved = world.set_alias(agent, "production", 3)
    assert run_job(defs, instance).success

    shown = run_notebook()

    timeline = shown["alias_timeline"]
    assert (timeline.agent_id.unique().tolist(), timeline.alias.unique().tolist()) == (
        [agent],
        ["production"],
    )
    assert list(
        zip(
            timeline.version,
            timeline.valid_from,
            timeline.valid_to.astype(object).where(timeline.valid_to.notna(), None),
            strict=True,
        )
    ) == [
        (1, api_time(first_target["updated_at"]), api_time(moved["updated_at"])),
        (3, api_time(moved["updated_at"]), None),
    ]
    drawn = chart_rows(shown["alias_timeline_chart"].to_dict())
    assert [(row["version"], row["held"]) for row in drawn] == [(1, "closed"), (3, "open")]

    changes = shown["version_changes"]
    assert list(zip(changes.version, changes.previous_version, changes.kinds, strict=True)) == [
        (n, n - 1, kind) for n, (kind, _) in enumerate(edits, start=1)
    ]
    assert changes.what_changed[0] == "model mistral-small-latest -> mistral-large-latest"
    assert changes.what_changed[1] == "tools +web_search"
    cells = chart_rows(shown["changes_by_version_chart"].to_dict())
    assert {(row["version"], row["kind"]) for row in cells if row["changed"]} == {
        (n, kind) for n, (kind, _) in enumerate(edits, start=1)
    }

    # On the night in question (now, by default): version 3, which replaced 1, with what
    # versions 2 and 3 changed.
    assert (shown["pointed_at"], shown["replaced"]) == (3, 1)
    assert list(shown["went_live"].kinds) == [kind for kind, _ in edits[1:3]]

    monday = {
        instant: pd.Timestamp(instant).normalize() - pd.Timedelta(days=instant.weekday())
        for instant in weeks
    }
    expected = Counter(
        (monday[instant], kind) for instant, (kind, _) in zip(weeks, edits, strict=True)
    )
    weekly = shown["weekly_changes"]
    assert (
        dict(zip(zip(weekly.week_start, weekly.kind, strict=True), weekly.changes, strict=True))
        == expected
    )
    assert sum(
        row["changes"] for row in chart_rows(shown["weekly_changes_chart"].to_dict())
    ) == len(edits)


def test_workspaces_are_shown_side_by_side_and_counted_together(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    eu_world = World.generate(agents=7, seed=77, max_versions=3, max_aliases=2)
    sandbox.add_workspace("sk-test-eu-notebook", eu_world)
    point_at(sandbox, monkeypatch.setenv)
    monkeypatch.setenv(
        "SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__EU__API_KEY", "sk-test-eu-notebook"
    )
    for workspace in ("default", "eu"):
        run_load(make_pipeline(workspace=workspace), workspace=workspace, alone=False)
    worlds = {"default": sandbox.world, "eu": eu_world}

    defs = run_notebook()

    expected = {
        name: (
            len(world.agents()),
            sum(len(world.versions(a["id"])) for a in world.agents()),
            sum(len(world.aliases(a["id"])) for a in world.agents()),
        )
        for name, world in worlds.items()
    }
    table = defs["workspaces"]
    assert {
        row.workspace: (row.agents, row.versions, row.aliases) for row in table.itertuples()
    } == expected
    drawn = {
        (row["workspace"], row["what"]): row["count"]
        for row in chart_rows(defs["workspaces_chart"].to_dict())
    }
    assert drawn[("eu", "agents")] == expected["eu"][0]
    # The other charts count every workspace together; aliases join within their workspace.
    by_model = Counter(a["model"] for world in worlds.values() for a in world.agents())
    assert {
        row["model"]: row["agents"] for row in chart_rows(defs["agents_by_model_chart"].to_dict())
    } == by_model
    assert len(defs["aliases"]) == sum(aliases for _, _, aliases in expected.values())
    assert set(defs["aliases"].workspace) == set(worlds)


def test_the_notebook_runs_in_marimo_headless_as_a_user_opens_it(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    load()
    # A copy, so that marimo's session cache (__marimo__/) lands here, not in the repository.
    copy = tmp_path / "agents.py"
    shutil.copy(NOTEBOOK, copy)
    environment = os.environ | {
        "MARIMO_SKIP_UPDATE_CHECK": "1",  # marimo asks the network for a newer version otherwise
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # and would read the user's marimo.toml
    }
    command = [sys.executable, "-m", "marimo", "export", "html", str(copy), "-o", "agents.html"]
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    # marimo exits 1 when any cell raised ("some cells failed to execute").
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "agents.html").stat().st_size > 0

    session = json.loads((tmp_path / "__marimo__" / "session" / "agents.py.json").read_text())
    outputs = [output for cell in session["cells"] for output in cell["outputs"]]
    assert [output for output in outputs if output["type"] == "error"] == []
    charts = {
        spec["title"]: spec
        for spec in (
            json.loads(output["data"][VEGA_LITE])
            for output in outputs
            if VEGA_LITE in output.get("data", {})
        )
    }
    assert set(charts) >= {
        "Live agents by model",
        "Live agents using each tool type",
        "Versions created per hour",
        "Changes per week by kind",
    }
    by_model = {row["model"]: row["agents"] for row in chart_rows(charts["Live agents by model"])}
    assert by_model == Counter(agent["model"] for agent in sandbox.world.agents())


def test_a_fresh_warehouse_gives_empty_charts_not_errors() -> None:
    defs = run_notebook()

    for name in (
        "agents_by_model",
        "tool_types",
        "versions_over_time",
        "aliases",
        "alias_timeline",
        "version_changes",
        "weekly_changes",
    ):
        assert defs[name].empty, name
    for name in (
        "agents_by_model_chart",
        "tool_types_chart",
        "versions_over_time_chart",
        "alias_targets_chart",
        "alias_timeline_chart",
        "changes_by_version_chart",
        "weekly_changes_chart",
    ):
        assert chart_rows(defs[name].to_dict()) == [], name


def test_versions_are_counted_per_day_or_week_over_longer_spans() -> None:
    module = notebook()
    created = pd.Series(
        pd.to_datetime(["2025-01-01T10:00Z", "2025-01-01T23:00Z", "2025-01-03T01:00Z"])
    )
    assert module.period_of(created) == "hour"
    assert module.period_of(created.iloc[[0]]) == "hour"
    over_a_month = pd.concat([created, pd.Series(pd.to_datetime(["2025-02-01T00:00Z"]))])
    assert module.period_of(over_a_month) == "day"
    daily = module.count_per_period(over_a_month, "day")
    assert len(daily) == 32 and daily.versions.sum() == 4
    assert daily.versions.iloc[0] == 2 and daily.versions.iloc[-1] == 1

    over_a_year = pd.Series(
        pd.to_datetime(["2025-01-01T10:00Z", "2025-01-07T00:00Z", "2026-01-01T00:00Z"])
    )
    assert module.period_of(over_a_year) == "week"
    weekly = module.count_per_period(over_a_year, "week")
    # Weeks start on Monday: 2025-01-01 is a Wednesday, 2025-01-07 the Tuesday after.
    assert weekly.period_start.iloc[0] == pd.Timestamp("2024-12-30", tz="UTC")
    assert weekly.versions.iloc[0] == 1 and weekly.versions.iloc[1] == 1
    assert set(weekly.period_start.dt.day_of_week) == {0} and weekly.versions.sum() == 3
