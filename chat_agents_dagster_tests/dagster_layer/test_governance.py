"""The governance tables through Dagster, on DuckDB and on PostgreSQL: alias moves at known times
give exactly the expected intervals across runs, a deletion and a re-creation; versions built to
differ in one thing each give exactly that change; an unchanged night writes nothing and asks the
API nothing more; a full refresh keeps the history and rebuilds the changes to the same content;
the worked queries of docs/governance.md answer both questions."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import GOVERNANCE_TABLES, SOURCE_NAME, TABLES
from chat_agents_dagster_tests.dagster_helpers import (
    FULL_REFRESH_ALL,
    check_results,
    definitions,
    run_job,
)
from chat_agents_dagster_tests.helpers import REPO, point_at, query

GOVERNANCE_DOC = REPO / "docs" / "governance.md"
HISTORY = (
    "SELECT alias, version, valid_from, valid_to, valid_from_source, valid_to_source"
    " FROM {dataset}.agent_alias_history ORDER BY alias, valid_from"
)


def utc(value: Any) -> Any:
    """A warehouse timestamp (naive on DuckDB, aware on PostgreSQL) in UTC; other values as
    they are."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def api_time(stamp: str) -> datetime:
    """A timestamp as the API writes it (`...Z`)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def rows(sql: str) -> list[tuple[Any, ...]]:
    return [tuple(utc(value) for value in row) for row in query(make_pipeline(), sql)]


def last_load() -> datetime:
    """When the last load of the agents ended, as dlt recorded it."""
    [(at,)] = rows(
        f"SELECT MAX(inserted_at) FROM {{dataset}}._dlt_loads WHERE schema_name = '{SOURCE_NAME}'"
    )
    return at


def governed(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Governance table -> metadata values of its materialization in this run."""
    assert result.success
    failed = {key: e.metadata for key, e in check_results(result).items() if not e.passed}
    assert failed == {}
    return {
        event.asset_key.path[-1]: {name: value.value for name, value in event.metadata.items()}
        for event in result.asset_materializations_for_node("chat_agents_governance")
    }


def night(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs: Any) -> datetime:
    """A run of the job; when its load ended."""
    governed(run_job(defs, instance, **kwargs))
    return last_load()


def test_alias_moves_deletion_and_recreation_give_exactly_the_expected_intervals(
    warehouse: str, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    agent = world.create_agent(name="Support", model="mistral-small-latest")["id"]
    for n in (1, 2):
        world.update_agent(agent, instructions=f"Revision {n}.")
    production = world.set_alias(agent, "production", 0)
    staging = world.set_alias(agent, "staging", 1)
    point_at(start_sandbox(world), monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    first = night(defs, instance)
    # Moves after the first run: one the API dates, one it does not (a PUT that leaves the
    # alias's updated_at alone).
    world.advance_to(first)
    moved = world.set_alias(agent, "production", 1)
    world.set_alias(agent, "staging", 2, restamp=False)
    second = night(defs, instance)
    world.advance_to(second)
    world.delete_alias(agent, "staging")
    third = night(defs, instance)
    [(deleted_at,)] = rows("SELECT deleted_at FROM {dataset}.agent_aliases WHERE alias = 'staging'")
    world.advance_to(third)
    recreated = world.set_alias(agent, "staging", 0)
    night(defs, instance)

    at = api_time
    assert rows(HISTORY) == [
        ("production", 0, at(production["updated_at"]), at(moved["updated_at"]), "api", "api"),
        ("production", 1, at(moved["updated_at"]), None, "api", None),
        ("staging", 1, at(staging["updated_at"]), second, "api", "run"),
        ("staging", 2, second, deleted_at, "run", "run"),
        ("staging", 0, at(recreated["updated_at"]), None, "api", None),
    ]
    assert first < second < deleted_at <= at(recreated["updated_at"])


def test_versions_differing_in_one_thing_each_give_exactly_that_change(
    warehouse: str, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    function: dict[str, Any] = {"name": "lookup", "description": "Finds an order", "parameters": {}}
    lookup = {"type": "function", "function": function}
    agent = world.create_agent(
        name="Orders",
        model="mistral-small-latest",
        instructions="Answer briefly.",
        tools=[lookup],
        completion_args={"stop": ["\n\n"]},
    )["id"]
    parameters = {"type": "object", "properties": {"order": {"type": "string"}}}
    redefined = {"type": "function", "function": {**function, "parameters": parameters}}
    appended = "Cite the order number."
    edits: list[tuple[str, dict[str, Any]]] = [
        ("tools", {"tools": [lookup, {"type": "web_search"}]}),
        ("model", {"model": "mistral-large-latest"}),
        ("completion_args", {"completion_args": {"stop": ["END", "\n\n"]}}),
        ("instructions", {"instructions": f"Answer briefly. {appended}"}),
        ("tools", {"tools": [redefined, {"type": "web_search"}]}),
        ("metadata", {"metadata": {"team": "orders"}}),
    ]
    for _, fields in edits:
        world.update_agent(agent, **fields)
    point_at(start_sandbox(world), monkeypatch.setenv)

    materialized = governed(run_job(definitions(), dg.DagsterInstance.ephemeral()))

    assert materialized["agent_version_changes"]["rows_written"] == len(edits)
    flags = ["model", "instructions", "description", "tools", "completion_args", "guardrails"]
    flags += ["handoffs", "metadata", "other"]
    changed = rows(
        f"SELECT version, previous_version, kinds, {', '.join(f'{f}_changed' for f in flags)}"
        " FROM {dataset}.agent_version_changes ORDER BY version"
    )
    assert [row[:3] for row in changed] == [
        (n, n - 1, kind) for n, (kind, _) in enumerate(edits, start=1)
    ]
    for (kind, _), row in zip(edits, changed, strict=True):
        assert dict(zip(flags, row[3:], strict=True)) == {flag: flag == kind for flag in flags}

    versions = world.versions(agent)
    columns = [
        "model_before",
        "model_after",
        "tools_added",
        "tools_removed",
        "tools_redefined",
        "completion_args_changes",
        "metadata_changes",
        "other_fields",
        "instructions_chars_before",
        "instructions_chars_after",
        "instructions_words_added",
        "instructions_words_removed",
        "instructions_similarity",
    ]
    details = query(
        make_pipeline(),
        f"SELECT version, {', '.join(columns)} FROM {{dataset}}.agent_version_changes",
    )
    listed = {"tools_added", "tools_removed", "tools_redefined", "completion_args_changes"}
    listed |= {"metadata_changes", "other_fields"}
    # JSON columns come back as text from DuckDB and decoded from PostgreSQL.
    by_version = {
        row[0]: {
            name: json.loads(value) if name in listed and isinstance(value, str) else value
            for name, value in zip(columns, row[1:], strict=True)
        }
        for row in details
    }

    def changes(version: int) -> dict[str, Any]:
        """The JSON lists of a version's row that are not empty."""
        return {k: v for k, v in by_version[version].items() if k in listed and v != []}

    assert changes(1) == {"tools_added": [{"type": "web_search", "name": None}]}
    assert changes(2) == {}
    assert (by_version[2]["model_before"], by_version[2]["model_after"]) == (
        versions[1]["model"],
        versions[2]["model"],
    )
    assert changes(3) == {
        "completion_args_changes": [
            {"key": "stop", "from": versions[2]["completion_args"]["stop"], "to": ["END", "\n\n"]}
        ]
    }
    assert changes(4) == {}
    before, after = versions[3]["instructions"], versions[4]["instructions"]
    instructions = {k: v for k, v in by_version[4].items() if k.startswith("instructions_")}
    assert instructions.pop("instructions_similarity") < 1
    assert instructions == {
        "instructions_chars_before": len(before),
        "instructions_chars_after": len(after),
        "instructions_words_added": len(appended.split()),
        "instructions_words_removed": 0,
    }
    assert changes(5) == {
        "tools_redefined": [
            {"type": "function", "name": "lookup", "fields": ["function.parameters"]}
        ]
    }
    assert changes(6) == {"metadata_changes": [{"key": "team", "from": None, "to": "orders"}]}
    assert all(by_version[n]["instructions_similarity"] == 1 for n in by_version if n != 4)


def test_a_night_without_the_derivation_is_caught_up_by_the_next_run(
    warehouse: str, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loaded tables were materialized alone one night (or the derivation's step failed):
    the next run writes what that night missed, the move dated by the API, the new version
    compared, and every check passes."""
    world = World()
    agent = world.create_agent(name="Support", model="mistral-small-latest")["id"]
    world.update_agent(agent, instructions="Be brief.")
    created = world.set_alias(agent, "production", 0)
    point_at(start_sandbox(world), monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    first = night(defs, instance)
    world.advance_to(first)
    moved = world.set_alias(agent, "production", 1)
    world.update_agent(agent, model="mistral-large-latest")
    assert run_job(defs, instance, tables=[table.name for table in TABLES]).success

    caught_up = governed(run_job(defs, instance))

    assert caught_up["agent_alias_history"]["rows_written"] == 2  # one interval closed, one opened
    assert caught_up["agent_version_changes"]["rows_written"] == 1
    at = api_time
    assert rows(HISTORY) == [
        ("production", 0, at(created["updated_at"]), at(moved["updated_at"]), "api", "api"),
        ("production", 1, at(moved["updated_at"]), None, "api", None),
    ]
    assert rows("SELECT version, kinds FROM {dataset}.agent_version_changes ORDER BY version") == [
        (1, "instructions"),
        (2, "model"),
    ]


def test_an_unchanged_night_writes_nothing_and_asks_the_api_nothing_more(
    warehouse: str, world_server: SandboxServer
) -> None:
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    governed(run_job(defs, instance))
    before = {t.name: rows(f"SELECT * FROM {{dataset}}.{t.name}") for t in GOVERNANCE_TABLES}

    world_server.stats.reset()
    assert run_job(defs, instance, tables=[table.name for table in TABLES]).success
    load_only = world_server.stats.total()
    world_server.stats.reset()
    materialized = governed(run_job(defs, instance))

    assert world_server.stats.total() == load_only
    for table in GOVERNANCE_TABLES:
        assert materialized[table.name]["rows_written"] == 0
        assert materialized[table.name]["dagster/row_count"] == len(before[table.name])
        assert rows(f"SELECT * FROM {{dataset}}.{table.name}") == before[table.name]


def test_a_full_refresh_keeps_the_history_and_rebuilds_the_changes_to_the_same_content(
    warehouse: str, world_server: SandboxServer
) -> None:
    world = world_server.world
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    governed(run_job(defs, instance))
    with_aliases = [a for a in world.agents() if world.aliases(a["id"])]
    moved = with_aliases[0]
    alias = world.aliases(moved["id"])[0]
    world.set_alias(moved["id"], alias["alias"], (alias["version"] + 1) % len(moved["versions"]))
    world.delete_agent(with_aliases[1]["id"])
    governed(run_job(defs, instance))
    # Every column but dlt's load bookkeeping, as text that sorts (PostgreSQL decodes JSON).
    changes = "SELECT * EXCLUDE (_dlt_load_id, _dlt_id) FROM {dataset}.agent_version_changes"
    if warehouse == "postgres":
        changes = (
            "SELECT CAST(to_jsonb(c) - '_dlt_load_id' - '_dlt_id' AS TEXT)"
            " FROM {dataset}.agent_version_changes c"
        )
    history, compared = sorted(rows(HISTORY)), sorted(rows(changes))

    materialized = governed(run_job(defs, instance, run_config=FULL_REFRESH_ALL))

    assert materialized["agent_version_changes"]["full_refresh"] is True
    # Every pair of the agents the API still lists is compared again; the deleted agent's rows
    # stay as they were, as the API cannot give its versions back.
    pairs = sum(len(agent["versions"]) - 1 for agent in world.agents())
    assert materialized["agent_version_changes"]["rows_written"] == pairs < len(compared)
    assert materialized["agent_alias_history"]["rows_written"] == 0
    assert sorted(rows(HISTORY)) == history
    assert sorted(rows(changes)) == compared
    assert len(history) > len([a for a in world.agents() for _ in world.aliases(a["id"])]), (
        "the history keeps the moved alias's and the deleted agent's closed intervals"
    )


def doc_queries() -> dict[str, str]:
    """The worked queries of docs/governance.md, by the heading above each."""
    text = GOVERNANCE_DOC.read_text()
    found = re.findall(r"^### (Q\d)[^\n]*\n(?:(?!^### ).)*?```sql\n(.*?)```", text, re.S | re.M)
    return dict(found)


def test_the_worked_queries_of_the_docs_answer_both_questions(
    warehouse: str, start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    agent = world.create_agent(name="Support", model="mistral-small-latest")["id"]
    world.update_agent(agent, model="mistral-large-latest")
    world.set_alias(agent, "production", 0)
    point_at(start_sandbox(world), monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    first = night(defs, instance)
    world.advance_to(first)
    moved = api_time(world.set_alias(agent, "production", 1)["updated_at"])
    night(defs, instance)
    queries = doc_queries()
    assert set(queries) == {"Q1", "Q2"}

    def ask(name: str, instant: datetime) -> list[tuple[Any, ...]]:
        sql = queries[name].replace("chat_agents_data.", "{dataset}.")
        sql = sql.replace("ag_0123456789abcdef", agent)
        sql = sql.replace("2026-11-30 23:00:00+00", instant.isoformat(sep=" "))
        return rows(sql)

    before_move = first if first < moved else moved.replace(microsecond=0)
    assert [row[0] for row in ask("Q1", before_move)] == [0]
    assert [row[0] for row in ask("Q1", moved)] == [1]
    [went_live] = ask("Q2", moved)
    assert went_live[:3] == (1, 0, "model")
