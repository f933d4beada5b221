"""Schema drift in the API's answers: a new field, a field that changes type, a new tool type.
The load goes on and keeps the new data, and the `column_schema_change` check warns in Dagster
on the run that brought the change, naming the columns; a first materialization or an unchanged
re-run does not warn."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import pytest

from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import make_pipeline
from chat_agents_dagster.tables import TABLES
from chat_agents_dagster_tests.dagster_helpers import check_results, definitions, run_job
from chat_agents_dagster_tests.helpers import point_at, query
from chat_agents_dagster_tests.warehouse import AGENT_ROW_TABLES, assert_equals_truth

CHECK = "column_schema_change"


@pytest.fixture
def server(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    server = start_sandbox(World.generate(agents=10, seed=3, max_versions=2, max_aliases=2))
    point_at(server, monkeypatch.setenv)
    return server


def schema_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        table: evaluation
        for (table, name), evaluation in check_results(result).items()
        if name == CHECK
    }


def test_the_first_materialization_and_an_unchanged_rerun_do_not_warn(
    server: SandboxServer,
) -> None:
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()

    first, second = run_job(defs, instance), run_job(defs, instance)

    assert first.success and second.success
    for result, says in ((first, "Nothing to compare with"), (second, "No change")):
        checks = schema_checks(result)
        assert set(checks) == {table.name for table in TABLES}
        for evaluation in checks.values():
            assert evaluation.passed
            assert evaluation.severity == dg.AssetCheckSeverity.WARN
            assert says in (evaluation.description or "")


# Each drift: the change made to one agent (a new version of it), the columns the check must
# report added in each table holding whole agents ("{t}" is the table), and a query for the
# drifted value in `agent_detail` with the value the warehouse must hold.
DRIFTS: dict[str, tuple[dict[str, Any], set[str], str, Any]] = {
    "new_field": (
        {"sharing": {"team": "platform", "seats": 12}, "rating": 4.5},
        {"{t}.sharing__team (text)", "{t}.sharing__seats (bigint)", "{t}.rating (double)"},
        "SELECT sharing__team, sharing__seats, rating FROM {dataset}.agent_detail"
        " WHERE id = '{id}'",
        ("platform", 12, 4.5),
    ),
    "field_changes_type": (
        {"deployment_chat": "sometimes"},
        {"{t}.deployment_chat__v_text (text)"},
        "SELECT deployment_chat__v_text FROM {dataset}.agent_detail WHERE id = '{id}'",
        ("sometimes",),
    ),
    "new_tool_type": (
        {"tools": [{"type": "quantum_search", "quantum_depth": 3, "regions": ["eu", "us"]}]},
        {"{t}__tools.quantum_depth (bigint)", "{t}__tools__regions.value (text)"},
        "SELECT n.type, n.quantum_depth FROM {dataset}.agent_detail__tools n"
        " JOIN {dataset}.agent_detail a ON n._dlt_parent_id = a._dlt_id WHERE a.id = '{id}'",
        ("quantum_search", 3),
    ),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_schema_drift_is_loaded_and_warned_about_in_dagster(
    server: SandboxServer, drift: str
) -> None:
    change, added, sql, stored = DRIFTS[drift]
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    agent_id = server.world.agents()[0]["id"]
    server.world.update_agent(agent_id, **change)

    result = run_job(defs, instance)

    assert result.success  # the load goes on
    checks = schema_checks(result)
    for table in AGENT_ROW_TABLES:
        evaluation = checks[table]
        assert not evaluation.passed, table
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        expected = {line.format(t=table) for line in added}
        assert expected <= set(evaluation.metadata["added_columns"].value), table  # type: ignore[arg-type]
        assert all(line in (evaluation.description or "") for line in expected)
    assert checks["agent_aliases"].passed  # aliases carry no agent fields: nothing changed
    pipeline = make_pipeline()
    assert query(pipeline, sql.replace("{id}", agent_id)) == [stored]
    assert_equals_truth(pipeline, server.world)
