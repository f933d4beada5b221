"""The asset checks pass on a clean load and catch each way a warehouse goes wrong: a duplicated
key, an orphan row, a missing or extra version, an alias to nowhere, an emptied table."""

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from chat_agents_dagster.sandbox import SandboxServer
from chat_agents_dagster.source import make_pipeline, one_run_at_a_time
from chat_agents_dagster.tables import DEFAULT_WORKSPACE
from chat_agents_dagster_tests.dagster_helpers import check_results, definitions, run_job
from chat_agents_dagster_tests.helpers import point_at

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN


@pytest.fixture
def loaded(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.Definitions, dg.DagsterInstance]]:
    point_at(sandbox, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    result = run_job(defs, instance)
    assert result.success
    assert all(evaluation.passed for evaluation in check_results(result).values())
    yield defs, instance


def corrupt(directory: Path, *statements: str) -> None:
    with duckdb.connect(str(directory / "warehouse.duckdb")) as connection:
        connection.execute("SET schema = 'chat_agents_data'")
        for statement in statements:
            connection.execute(statement)


def failed_checks(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], run_fails: bool = True
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """The checks that failed in a run of every check, which failed if any ERROR check did (and
    must, or must not, as `run_fails` says)."""
    result = run_job(*loaded, job="checks_only")
    failed = {key: e for key, e in check_results(result).items() if not e.passed}
    assert result.success is not run_fails, failed
    return failed


def test_a_duplicated_agent_fails_the_primary_key_check_with_a_sample(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(isolated, "INSERT INTO agents SELECT * FROM agents LIMIT 1")
    failed = failed_checks(loaded)

    evaluation = failed.pop(("agents", "primary_key"))
    assert evaluation.severity == ERROR
    assert evaluation.metadata["duplicated_keys"].value == 1
    assert len(evaluation.metadata["offending_sample"].value) == 1  # type: ignore[arg-type]
    assert failed == {}


def test_an_orphan_version_fails_the_reference_check_and_warns_of_an_extra_row(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(
        isolated,
        "INSERT INTO agent_versions SELECT * REPLACE ('ag_orphan' AS agent_id, md5(random()::text)"
        " AS _dlt_id) FROM agent_versions LIMIT 1",
    )
    failed = failed_checks(loaded)

    reference = failed.pop(("agent_versions", "references_agents"))
    assert reference.severity == ERROR
    # The sample is the reference's columns: the workspace, then the agent.
    assert reference.metadata["offending_sample"].value == [[DEFAULT_WORKSPACE, "ag_orphan"]]
    count = failed.pop(("agent_versions", "one_row_per_listed_version"))
    assert count.severity == WARN
    assert count.metadata["extra"].value == 1 and count.metadata["missing"].value == 0
    assert failed == {}


def test_a_version_detail_missing_for_no_reason_fails_the_row_count_check_and_the_run(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(
        isolated,
        "DELETE FROM agent_version_detail WHERE (agent_id, version) IN"
        " (SELECT agent_id, version FROM agent_version_detail LIMIT 1)",
    )
    failed = failed_checks(loaded)

    count = failed.pop(("agent_version_detail", "one_row_per_listed_version"))
    assert count.severity == ERROR
    assert count.metadata["missing"].value == 1 and count.metadata["extra"].value == 0
    assert count.metadata["missing_of_agents_gone_mid_run"].value == 0
    assert failed == {}


def test_an_alias_to_a_version_that_does_not_exist_fails(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path, sandbox: SandboxServer
) -> None:
    corrupt(isolated, "UPDATE agent_aliases SET version = 9999")
    failed = failed_checks(loaded)

    evaluation = failed.pop(("agent_aliases", "references_agent_versions"))
    assert evaluation.severity == ERROR
    world = sandbox.world
    aliases = sum(len(world.aliases(agent["id"])) for agent in world.agents())
    assert evaluation.metadata["offending"].value == aliases
    # The history's open rows still hold where the aliases pointed when loaded.
    history = failed.pop(("agent_alias_history", "one_open_row_per_live_alias"))
    assert history.metadata["open_rows_pointing_elsewhere"].value == aliases
    assert history.metadata["live_aliases_without_one_open_row"].value == 0
    assert failed == {}


def test_an_emptied_table_fails_while_the_api_reported_rows(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(isolated, "DELETE FROM agent_detail")
    failed = failed_checks(loaded)

    emptied = failed.pop(("agent_detail", "not_emptied"))
    assert emptied.severity == ERROR
    assert emptied.metadata["live_rows"].value == 0
    assert emptied.metadata["api_rows_last_run"].value > 0  # type: ignore[operator]
    assert failed.pop(("agent_detail", "one_row_per_agent")).severity == ERROR
    assert failed == {}


def test_a_table_that_does_not_exist_fails_its_checks_instead_of_passing(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(isolated, "DROP TABLE agent_aliases")
    failed = failed_checks(loaded)

    names = {"primary_key", "references_agents", "references_agent_versions", "not_emptied"}
    for name in names:
        evaluation = failed.pop(("agent_aliases", name))
        assert evaluation.severity == ERROR
        assert evaluation.metadata["missing_tables"].value == ["agent_aliases"]
    history = failed.pop(("agent_alias_history", "one_open_row_per_live_alias"))
    assert history.metadata["missing_tables"].value == ["agent_aliases"]
    assert failed == {}


def test_overlapping_intervals_of_an_alias_fail_the_history_checks(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    """A second open interval, a second after the first began, for one alias."""
    corrupt(
        isolated,
        "INSERT INTO agent_alias_history SELECT * REPLACE (valid_from + INTERVAL 1 SECOND AS"
        " valid_from) FROM agent_alias_history WHERE valid_to IS NULL LIMIT 1",
    )
    failed = failed_checks(loaded)

    assert failed.pop(("agent_alias_history", "no_overlapping_intervals")).severity == ERROR
    open_rows = failed.pop(("agent_alias_history", "one_open_row_per_live_alias"))
    assert open_rows.metadata["live_aliases_without_one_open_row"].value == 1
    assert failed == {}


def test_an_interval_at_a_version_never_loaded_fails_the_history_checks(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(
        isolated,
        "UPDATE agent_alias_history SET version = 999 WHERE (agent_id, alias) IN"
        " (SELECT agent_id, alias FROM agent_alias_history LIMIT 1)",
    )
    failed = failed_checks(loaded)

    nowhere = failed.pop(("agent_alias_history", "points_at_existing_version"))
    assert nowhere.severity == ERROR
    assert nowhere.metadata["offending"].value == 1
    assert nowhere.metadata["intervals_of_agents_no_longer_loaded"].value == 0
    open_rows = failed.pop(("agent_alias_history", "one_open_row_per_live_alias"))
    assert open_rows.metadata["open_rows_pointing_elsewhere"].value == 1
    assert failed == {}


def test_a_lost_or_misplaced_change_row_fails_the_version_changes_checks(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    corrupt(
        isolated,
        "DELETE FROM agent_version_changes WHERE (agent_id, version) IN"
        " (SELECT agent_id, version FROM agent_version_changes LIMIT 1)",
        "UPDATE agent_version_changes SET previous_version = previous_version - 1"
        " WHERE (agent_id, version) IN"
        " (SELECT agent_id, version FROM agent_version_changes LIMIT 1)",
    )
    failed = failed_checks(loaded)

    missing = failed.pop(("agent_version_changes", "every_version_accounted_for"))
    assert missing.metadata["offending"].value == 2  # the deleted row, the misplaced one
    misplaced = failed.pop(("agent_version_changes", "one_row_per_consecutive_pair"))
    assert misplaced.metadata["offending"].value == 1
    assert failed == {}


def test_a_hole_left_by_an_agent_gone_mid_run_is_a_warning_and_the_next_run_fills_it(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(sandbox, monkeypatch.setenv)
    defs, instance = definitions(), dg.DagsterInstance.ephemeral()
    assert run_job(defs, instance).success
    sandbox.world.create_agent(name="Gone before its detail", model="mistral-small-latest")
    # The new agent's detail is the night's only detail request: it answers as a deleted agent.
    sandbox.fail_next(1, status=404, route="GET /v1/agents/{agent_id}")

    night = run_job(defs, instance)

    assert night.success
    failed = {key: e for key, e in check_results(night).items() if not e.passed}
    hole = failed.pop(("agent_detail", "one_row_per_agent"))
    assert hole.severity == WARN
    assert hole.metadata["missing_of_agents_gone_mid_run"].value == 1
    assert failed == {}

    after = run_job(defs, instance)

    assert after.success and all(e.passed for e in check_results(after).values())


def test_the_checks_wait_for_a_load_that_holds_the_run_lock(
    loaded: tuple[dg.Definitions, dg.DagsterInstance], isolated: Path
) -> None:
    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for it to end" in record.getMessage():
                waiting.set()

    handler = Waiting()
    logging.getLogger("chat_agents_dagster.source.lock").addHandler(handler)

    def a_load_writing() -> None:
        with one_run_at_a_time(make_pipeline()):
            held.set()
            waiting.wait(timeout=60)
            corrupt(isolated, "INSERT INTO agents SELECT * FROM agents LIMIT 1")

    held = threading.Event()
    writer = threading.Thread(target=a_load_writing)
    writer.start()
    held.wait(timeout=60)
    try:
        failed = failed_checks(loaded)
    finally:
        writer.join()
        logging.getLogger("chat_agents_dagster.source.lock").removeHandler(handler)

    # The checks read what the load had written under the lock, after it released it.
    assert waiting.is_set()
    assert set(failed) == {("agents", "primary_key")}
