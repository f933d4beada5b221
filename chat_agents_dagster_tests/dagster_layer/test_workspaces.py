"""Several workspaces through Dagster: one set of assets partitioned by workspace, a run per
partition through that workspace's pipeline, checks on the partition's rows, a nightly run per
workspace and a catch-up run for the stale workspace only."""

import time
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pytest

from chat_agents_dagster.defs.alerts import RESOURCE_KEY, ChatAgentsAlerts
from chat_agents_dagster.defs.deployment import DeploymentSettingError, DeploymentSettings
from chat_agents_dagster.defs.schedules import SCHEDULE_NAME
from chat_agents_dagster.defs.sensors import build_freshness_sensor
from chat_agents_dagster.defs.translator import table_asset_key
from chat_agents_dagster.sandbox import SandboxServer, World
from chat_agents_dagster.source import ApiAuthError, make_pipeline
from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES
from chat_agents_dagster_tests.dagster_helpers import (
    FULL_REFRESH,
    Clock,
    check_results,
    definitions,
    materializations,
    run_job,
)
from chat_agents_dagster_tests.helpers import point_at, query
from chat_agents_dagster_tests.warehouse import assert_equals_truth, rows_of_workspace

EU, US = "eu", "us"
KEYS = {EU: "sk-test-eu-key-recognisable", US: "sk-test-us-key-recognisable"}
WORKSPACES = (DEFAULT_WORKSPACE, EU)
KEYS_OF_TABLES = [table_asset_key(table.name) for table in TABLES]


def key_variable(workspace: str) -> str:
    return f"SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__{workspace.upper()}__API_KEY"


@pytest.fixture
def worlds(
    start_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> dict[str, World]:
    """The default workspace, eu and us on one sandbox, each with its key configured."""
    server = start_sandbox(World.generate(agents=10, seed=41, max_versions=3, max_aliases=2))
    point_at(server, monkeypatch.setenv)
    worlds = {DEFAULT_WORKSPACE: server.world}
    for n, workspace in enumerate((EU, US)):
        worlds[workspace] = World.generate(agents=6 + n, seed=42 + n, max_versions=3)
        server.add_workspace(KEYS[workspace], worlds[workspace])
        monkeypatch.setenv(key_variable(workspace), KEYS[workspace])
    return worlds


def live_rows(world: World) -> dict[str, int]:
    agents = world.agents()
    versions = sum(len(world.versions(a["id"])) for a in agents)
    return {
        "agents": len(agents),
        "agent_detail": len(agents),
        "agent_versions": versions,
        "agent_version_detail": versions,
        "agent_aliases": sum(len(world.aliases(a["id"])) for a in agents),
    }


def test_each_partition_loads_its_workspace_exactly_with_its_checks_passing(
    worlds: dict[str, World],
) -> None:
    defs, instance = definitions(workspaces=WORKSPACES), dg.DagsterInstance.ephemeral()

    results = {workspace: run_job(defs, instance, partition=workspace) for workspace in WORKSPACES}

    pipeline = make_pipeline()
    for workspace, result in results.items():
        assert result.success, workspace
        assert_equals_truth(pipeline, worlds[workspace], workspace)
        metadata = materializations(result)
        assert {t: m["live_rows"] for t, m in metadata.items()} == live_rows(worlds[workspace])
        assert {m["workspace"] for m in metadata.values()} == {workspace}
        for event in result.asset_materializations_for_node("chat_agents_load"):
            assert event.partition == workspace
        evaluations = check_results(result)
        assert evaluations and all(e.passed for e in evaluations.values()), workspace
    # One set of assets, partitioned: the lineage is the five tables, as before.
    job = defs.resolve_job_def("chat_agents_job")
    assert job.partitions_def is not None
    assert list(job.partitions_def.get_partition_keys()) == list(WORKSPACES)
    for table in TABLES:
        assert defs.resolve_assets_def(table_asset_key(table.name)).partitions_def is not None


def test_a_refused_key_fails_its_partition_alone(
    worlds: dict[str, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    defs, instance = definitions(workspaces=WORKSPACES), dg.DagsterInstance.ephemeral()
    monkeypatch.setenv(key_variable(EU), "sk-revoked")

    refused = run_job(defs, instance, partition=EU)
    loaded = run_job(defs, instance, partition=DEFAULT_WORKSPACE)

    assert not refused.success and loaded.success
    [failure] = refused.get_step_failure_events()
    error = failure.step_failure_data.error
    causes = []
    while error is not None:
        causes.append(error)
        error = error.cause or error.context
    assert any(
        ApiAuthError.__name__ in (c.cls_name or "") and key_variable(EU) in c.message
        for c in causes
    ), [c.message for c in causes]
    assert_equals_truth(make_pipeline(), worlds[DEFAULT_WORKSPACE])


def test_deletions_and_a_full_refresh_of_one_partition_leave_the_others_rows_untouched(
    worlds: dict[str, World],
) -> None:
    defs, instance = definitions(workspaces=WORKSPACES), dg.DagsterInstance.ephemeral()
    for workspace in WORKSPACES:
        assert run_job(defs, instance, partition=workspace).success
    untouched = rows_of_workspace(make_pipeline(), DEFAULT_WORKSPACE)
    gone = worlds[EU].agents()[0]["id"]
    worlds[EU].delete_agent(gone)

    deleted = run_job(defs, instance, partition=EU)
    refreshed = run_job(defs, instance, partition=EU, run_config=FULL_REFRESH)

    assert deleted.success and refreshed.success
    assert all(e.passed for e in check_results(refreshed).values())
    assert rows_of_workspace(make_pipeline(), DEFAULT_WORKSPACE) == untouched
    pipeline = make_pipeline()
    assert_equals_truth(pipeline, worlds[EU], EU)
    # Marked deleted, and kept through the full refresh: the API cannot give it back.
    assert query(
        pipeline,
        f"SELECT deleted_at IS NOT NULL FROM {{dataset}}.agents"
        f" WHERE workspace = '{EU}' AND id = '{gone}'",
    ) == [(True,)]
    assert {m["full_refresh"] for m in materializations(refreshed).values()} == {True}


def tonight(defs: dg.Definitions) -> list[dg.RunRequest]:
    """The nightly schedule's run requests for one night."""
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 12, 3, 2, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    return list(defs.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(context).run_requests or [])


def test_the_nightly_schedule_runs_every_workspace_and_one_added_joins_the_next_night(
    worlds: dict[str, World],
) -> None:
    requests = tonight(definitions(workspaces=WORKSPACES))
    assert sorted(r.partition_key or "" for r in requests) == sorted(WORKSPACES)
    assert len({r.run_key for r in requests}) == len(WORKSPACES)

    # `us` added to CHAT_AGENTS_WORKSPACES: the next night asks for it too, and it loads.
    three = definitions(workspaces=(*WORKSPACES, US))
    assert sorted(r.partition_key or "" for r in tonight(three)) == sorted((*WORKSPACES, US))
    assert run_job(three, dg.DagsterInstance.ephemeral(), partition=US).success
    assert_equals_truth(make_pipeline(workspace=US), worlds[US], US)


def materialize(instance: dg.DagsterInstance, workspace: str) -> tuple[float, float]:
    """Every table of `workspace` materialized now; (earliest, latest) of their timestamps."""
    stamps = []
    for key in KEYS_OF_TABLES:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition=workspace)
        )
        of = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[workspace])
        stamps.append(instance.fetch_materializations(of, limit=1).records[0].timestamp)
    return min(stamps), max(stamps)


def test_the_freshness_sensor_asks_for_the_stale_workspace_only() -> None:
    settings = DeploymentSettings(workspaces=WORKSPACES)
    instance, clock = dg.DagsterInstance.ephemeral(), Clock()
    sensor = build_freshness_sensor("chat_agents_job", KEYS_OF_TABLES, settings, clock=clock)
    _, eu_last = materialize(instance, EU)
    time.sleep(0.05)
    default_first, _ = materialize(instance, DEFAULT_WORKSPACE)
    window = settings.freshness_window.total_seconds()

    repository = definitions(workspaces=WORKSPACES).get_repository_def()

    def tick() -> list[dg.RunRequest]:
        resources = {RESOURCE_KEY: ChatAgentsAlerts()}
        with dg.build_sensor_context(
            instance=instance, resources=resources, repository_def=repository
        ) as context:
            return list(sensor.evaluate_tick(context).run_requests or [])

    clock.now = default_first  # both fresh
    assert tick() == []
    clock.now = (eu_last + default_first) / 2 + window  # eu just past its window, default not
    [request] = tick()

    assert request.partition_key == EU
    assert request.tags["chat_agents/trigger"] == "freshness-catch-up"


def test_bad_workspace_names_fail_the_load_naming_the_variable() -> None:
    with pytest.raises(DeploymentSettingError, match="CHAT_AGENTS_WORKSPACES='default,EU'"):
        DeploymentSettings.from_env({"CHAT_AGENTS_WORKSPACES": "default,EU"})
    assert DeploymentSettings.from_env({}).workspaces == (DEFAULT_WORKSPACE,)
    assert not DeploymentSettings.from_env({}).partitioned
