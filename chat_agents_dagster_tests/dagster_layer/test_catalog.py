"""The catalog: owners from the deployment, a code version per table that follows the code that
loads it, and the Mistral API asset observed by every load (run-wide figures once, a data
version that moves with the listing)."""

import subprocess
import sys

import dagster as dg
import pytest

from chat_agents_dagster.definitions import build_definitions
from chat_agents_dagster.defs.deployment import DeploymentSettingError, DeploymentSettings
from chat_agents_dagster.defs.translator import MISTRAL_AGENTS_API_KEY, table_asset_key
from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import table_code_versions
from chat_agents_dagster.source.versions import code_versions
from chat_agents_dagster.tables import GOVERNANCE_TABLES, TABLES
from chat_agents_dagster_tests.dagster_helpers import (
    api_observations,
    definitions,
    materializations,
    run_job,
)
from chat_agents_dagster_tests.helpers import REPO, point_at

SOURCE_DIR = REPO / "chat_agents_dagster" / "source"
NAMES = [table.name for table in TABLES]


def specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    graph = defs.resolve_asset_graph()
    return {key: graph.get(key).to_asset_spec() for key in graph.get_all_asset_keys()}


def test_every_asset_is_owned_by_whom_the_deployment_names() -> None:
    owners = ["team:data-platform", "ada@example.com"]
    settings = DeploymentSettings.from_env({"CHAT_AGENTS_OWNERS": ",".join(owners)})

    owned = specs(build_definitions(settings))
    unowned = specs(build_definitions(DeploymentSettings.from_env({})))

    tables = [*NAMES, *(table.name for table in GOVERNANCE_TABLES)]
    assert set(owned) == {MISTRAL_AGENTS_API_KEY, *(table_asset_key(name) for name in tables)}
    assert {key: list(spec.owners) for key, spec in owned.items()} == dict.fromkeys(owned, owners)
    assert all(not spec.owners for spec in unowned.values())


def test_an_owner_dagster_would_refuse_fails_the_load_naming_the_variable() -> None:
    with pytest.raises(DeploymentSettingError, match="CHAT_AGENTS_OWNERS: 'data-platform'"):
        DeploymentSettings.from_env({"CHAT_AGENTS_OWNERS": "ada@example.com, data-platform"})


def test_each_table_asset_carries_its_own_code_version_the_same_in_every_process() -> None:
    versions = table_code_versions()
    in_another_process = subprocess.run(
        [
            sys.executable,
            "-c",
            "from chat_agents_dagster.source import table_code_versions as v; print(v())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert set(versions) == set(NAMES)
    assert len(set(versions.values())) == len(NAMES), versions
    assert in_another_process == str(versions)
    by_key = specs(definitions())
    for name in NAMES:
        assert by_key[table_asset_key(name)].code_version == versions[name]


def source_texts() -> tuple[str, dict[str, str]]:
    shared = {
        path.name: path.read_text()
        for path in SOURCE_DIR.glob("*.py")
        if path.name not in ("resources.py", "__main__.py")
    }
    return (SOURCE_DIR / "resources.py").read_text(), shared


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def edit_function(text: str, name: str) -> str:
    """resources.py with one line added to the body of resource function `name`."""
    lines = text.splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line.lstrip().startswith(f"def {name}("))
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    lines.insert(start + 1, " " * indent + "pass  # changed\n")
    return "".join(lines)


def test_the_files_as_they_are_give_the_versions_the_location_shows() -> None:
    resources, shared = source_texts()
    assert code_versions(resources, shared) == table_code_versions()


@pytest.mark.parametrize("table", [name for name in NAMES if name != "agents"])
def test_a_change_to_one_transformer_changes_that_tables_version_alone(table: str) -> None:
    resources, shared = source_texts()
    before = code_versions(resources, shared)

    after = code_versions(edit_function(resources, table), shared)

    assert changed(before, after) == {table}


def test_a_change_to_what_feeds_every_table_or_to_shared_code_changes_every_version() -> None:
    resources, shared = source_texts()
    before = code_versions(resources, shared)

    feeder = code_versions(edit_function(resources, "agents"), shared)
    client = code_versions(resources, {**shared, "api.py": shared["api.py"] + "\n# changed\n"})
    helper = code_versions(resources.replace("def _hints(", "def _hints(  ", 1), shared)

    assert changed(before, feeder) == changed(before, client) == changed(before, helper)
    assert changed(before, feeder) == set(NAMES)


def test_a_change_to_a_tables_spec_changes_that_table_and_none_it_does_not_feed() -> None:
    resources, shared = source_texts()
    before = code_versions(resources, shared)
    tables = tuple(
        table
        if table.name != "agent_aliases"
        else type(table)(**{**vars(table), "description": "x"})
        for table in TABLES
    )

    assert changed(before, code_versions(resources, shared, tables)) == {"agent_aliases"}


def test_a_materialization_records_its_tables_code_version(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    instance = dg.DagsterInstance.ephemeral()

    assert run_job(definitions(), instance).success

    for name, version in table_code_versions().items():
        event = instance.get_latest_materialization_event(table_asset_key(name))
        assert event is not None and event.asset_materialization is not None
        tags = event.asset_materialization.tags or {}
        assert tags["dagster/code_version"] == version


def test_every_run_observes_the_api_once_and_its_data_version_follows_the_listing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    world = sandbox.world

    def night() -> tuple[dict[str, object], dict[str, dict[str, object]]]:
        sandbox.stats.reset()
        result = run_job(defs, instance)
        assert result.success
        [observed] = api_observations(result)
        assert observed["api_requests"] == sandbox.stats.total()
        assert observed["agents_listed"] == len(world.agents())
        return observed, materializations(result)

    first, tables = night()
    unchanged, _ = night()
    world.update_agent(world.agents()[0]["id"], instructions="Edited tonight")
    edited, _ = night()
    world.delete_agent(world.agents()[-1]["id"])
    deleted, _ = night()

    assert first["agents_new"] == len(world.agents()) + 1
    assert first["api_answers_by_status"] == {"200": first["api_requests"]}
    assert unchanged["data_version"] == first["data_version"] is not None
    assert len({first["data_version"], edited["data_version"], deleted["data_version"]}) == 3
    assert (edited["agents_changed"], deleted["agents_deleted"]) == (1, 1)
    # The run-wide figures are the observation's alone; each table keeps its own.
    for metadata in tables.values():
        assert not set(metadata) & set(first) - {"data_version"}
        assert {"rows_loaded", "dagster/row_count", "live_rows", "api_rows"} <= set(metadata)
    [latest] = instance.fetch_observations(MISTRAL_AGENTS_API_KEY, limit=1).records
    assert latest.asset_observation is not None
    assert latest.asset_observation.tags["dagster/data_version"] == deleted["data_version"]


def test_a_run_the_api_refuses_still_observes_how_it_answered(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv, key="sk-not-this-one")

    result = run_job(definitions(), dg.DagsterInstance.ephemeral())

    assert not result.success
    [observed] = api_observations(result)
    assert observed["api_answers_by_status"] == {"401": sandbox.stats.count_status(401)}
    assert (observed["listing_complete"], observed["data_version"]) == (False, None)
