"""Asset checks on keys and row counts, in plain SQL through dlt's SQL client, so the same checks
run on DuckDB, PostgreSQL or any SQL destination. Which checks exist follows from tables.py:
every table's primary key, every reference, every "one row per" rule, a guard against a
table silently emptied while the API reported rows, and a warning when its columns changed.

They read the warehouse holding the run lock, so never while a load writes it, and a table they
read that does not exist fails them: every run creates its tables, even empty."""

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dagster as dg
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from chat_agents_dagster.defs.assets import POOL
from chat_agents_dagster.defs.schema_changes import check_column_schema_change
from chat_agents_dagster.defs.translator import table_asset_key
from chat_agents_dagster.source import make_pipeline, one_run_at_a_time
from chat_agents_dagster.tables import DEFAULT_WORKSPACE, TABLES, WORKSPACE, Reference, TableSpec

SAMPLE = 10
ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN


class Sql:
    """Qualified, quoted SQL for one destination, reading one workspace's rows."""

    def __init__(self, client: SqlClientBase[Any], workspace: str = DEFAULT_WORKSPACE) -> None:
        self.client = client
        self.workspace = workspace
        self._exists: dict[str, bool] = {}

    def exists(self, name: str) -> bool:
        if name not in self._exists:
            try:
                self.client.execute_sql(f"SELECT 1 FROM {self.table(name)} WHERE 1 = 0")
                self._exists[name] = True
            except DatabaseUndefinedRelation:
                self._exists[name] = False
        return self._exists[name]

    def table(self, name: str) -> str:
        return self.client.make_qualified_table_name(name)

    def current_rows(self, name: str) -> str:
        """The workspace's rows of the table that are not marked deleted, as a subquery."""
        deleted_at, workspace = self.names("deleted_at", WORKSPACE)
        # Workspace names are checked to be [a-z0-9_] (the source's configuration): a safe literal.
        return (
            f"(SELECT * FROM {self.table(name)}"
            f" WHERE {deleted_at} IS NULL AND {workspace} = '{self.workspace}')"
        )

    def names(self, *names: str) -> list[str]:
        return [self.client.escape_column_name(name) for name in names]

    def cols(self, names: tuple[str, ...], alias: str) -> list[str]:
        return [f"{alias}.{name}" for name in self.names(*names)]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.client.execute_sql(sql) or []]

    def count(self, sql: str) -> int:
        found = self.rows(f"SELECT COUNT(*) FROM ({sql}) counted")
        return int(found[0][0]) if found else 0

    def offending(self, sql: str) -> tuple[int, list[tuple[Any, ...]]]:
        return self.count(sql), self.rows(f"{sql} LIMIT {SAMPLE}")


class History:
    """Each table's two latest materializations (this run's, and the one before; of the run's
    partition, when partitioned), read from the instance once per check step however many checks
    compare with them."""

    def __init__(self, instance: dg.DagsterInstance, partition: str | None = None) -> None:
        self.instance = instance
        self.partition = partition
        self._latest: dict[str, list[dg.AssetMaterialization | None]] = {}

    def latest(self, table: str) -> list[dg.AssetMaterialization | None]:
        if table not in self._latest:
            partitions = [self.partition] if self.partition else None
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=table_asset_key(table), asset_partitions=partitions
                ),
                limit=2,
            ).records
            self._latest[table] = [record.asset_materialization for record in records]
        return self._latest[table]


def check_result(
    table: str,
    check: str,
    offending: tuple[int, list[tuple[Any, ...]]],
    severity: dg.AssetCheckSeverity,
    **figures: int,
) -> dg.AssetCheckResult:
    count, sample = offending
    return dg.AssetCheckResult(
        asset_key=table_asset_key(table),
        check_name=check,
        passed=count == 0,
        severity=severity,
        metadata={
            **{name: dg.MetadataValue.int(value) for name, value in figures.items()},
            "offending": dg.MetadataValue.int(count),
            "offending_sample": dg.MetadataValue.json([[str(v) for v in row] for row in sample]),
        },
    )


def table_absent(sql: Sql, table: str, check: str, *reads: str) -> dg.AssetCheckResult | None:
    """A failed result if a table the check reads does not exist, else None."""
    missing = [name for name in (table, *reads) if not sql.exists(name)]
    if not missing:
        return None
    return dg.AssetCheckResult(
        asset_key=table_asset_key(table),
        check_name=check,
        passed=False,
        severity=ERROR,
        description=f"No table {', '.join(missing)} in the warehouse: run chat_agents_job to"
        " create and load it.",
        metadata={"missing_tables": dg.MetadataValue.json(missing)},
    )


def _listed_versions(sql: Sql) -> str:
    """(agent_id, version) for every entry of every agent's `versions` list."""
    agent_id, dlt_id = sql.cols(("id", "_dlt_id"), "a")
    value, parent = sql.cols(("value", "_dlt_parent_id"), "v")
    agent_alias, version_alias = sql.names("agent_id", "version")
    if not sql.exists("agents__versions"):  # created with the first agent's versions
        return (
            f"SELECT {agent_id} AS {agent_alias}, 0 AS {version_alias}"
            f" FROM {sql.current_rows('agents')} a WHERE 1 = 0"
        )
    return (
        f"SELECT {agent_id} AS {agent_alias}, {value} AS {version_alias} FROM"
        f" {sql.current_rows('agents')} a JOIN {sql.table('agents__versions')} v"
        f" ON {parent} = {dlt_id}"
    )


def rows_missing(
    sql: Sql, left: str, left_cols: list[str], right: str, right_cols: list[str]
) -> str:
    """Rows of `left` (a query or table, aliased l) with no row of `right` (aliased r)."""
    on = " AND ".join(f"{lc} = {rc}" for lc, rc in zip(left_cols, right_cols, strict=True))
    return (
        f"SELECT {', '.join(left_cols)} FROM {left} l LEFT JOIN {right} r ON {on}"
        f" WHERE {right_cols[0]} IS NULL"
    )


def check_primary_key(sql: Sql, _: History | None, table: TableSpec) -> dg.AssetCheckResult:
    if absent := table_absent(sql, table.name, "primary_key"):
        return absent
    keys = ", ".join(sql.cols(table.primary_key, "t"))
    name = sql.table(table.name)
    null = " OR ".join(f"{col} IS NULL" for col in sql.cols(table.primary_key, "t"))
    nulls = sql.count(f"SELECT * FROM {name} t WHERE {null}")
    duplicates = sql.offending(
        f"SELECT {keys}, COUNT(*) AS copies FROM {name} t GROUP BY {keys} HAVING COUNT(*) > 1"
    )
    offending = (duplicates[0] + nulls, duplicates[1])
    rows = sql.count(f"SELECT * FROM {name} t")
    return check_result(
        table.name,
        "primary_key",
        offending,
        ERROR,
        rows=rows,
        null_keys=nulls,
        duplicated_keys=duplicates[0],
    )


def check_reference(
    sql: Sql, _: History, table: TableSpec, reference: Reference
) -> dg.AssetCheckResult:
    if absent := table_absent(sql, table.name, f"references_{reference.table}", reference.table):
        return absent
    query = rows_missing(
        sql,
        sql.current_rows(table.name),
        sql.cols(reference.columns, "l"),
        sql.current_rows(reference.table),
        sql.cols(reference.table_columns, "r"),
    )
    return check_result(table.name, f"references_{reference.table}", sql.offending(query), ERROR)


def _gone_mid_run(history: History, table: str) -> set[str]:
    """Agents whose requests for `table` answered 404 in the run that last loaded it."""
    materialization = next(iter(history.latest(table)), None)
    value = materialization.metadata.get("agents_gone_mid_run") if materialization else None
    data = value.value if isinstance(value, dg.JsonMetadataValue) else None
    return {str(agent_id) for agent_id in data} if isinstance(data, list) else set()


def check_one_row_per(sql: Sql, history: History, table: TableSpec) -> dg.AssetCheckResult:
    """The table covers its set exactly: nothing missing, nothing extra. A missing row is an
    ERROR unless its agent answered 404 in the run that loaded the table (deleted mid-run: the
    next run marks it deleted); extra rows, and explained holes, are a WARN."""
    check = f"one_row_per_{table.one_row_per}"
    if absent := table_absent(sql, table.name, check, "agents"):
        return absent
    keys: tuple[str, ...] = ("agent_id", "version")
    expected, own = f"({_listed_versions(sql)})", keys
    if table.one_row_per == "agent":
        keys, own = ("agent_id",), ("id",)
        expected = "(SELECT {} AS {} FROM {} AS listed)".format(
            *sql.names("id", "agent_id"), sql.current_rows("agents")
        )
    name = sql.current_rows(table.name)
    missing = sql.rows(rows_missing(sql, expected, sql.cols(keys, "l"), name, sql.cols(own, "r")))
    extra = sql.offending(
        rows_missing(sql, name, sql.cols(own, "l"), expected, sql.cols(keys, "r"))
    )
    gone = _gone_mid_run(history, table.name)
    unexplained = [row for row in missing if str(row[0]) not in gone]
    return check_result(
        table.name,
        check,
        (len(missing) + extra[0], (unexplained or missing)[:SAMPLE] + extra[1]),
        ERROR if unexplained else WARN,
        expected=sql.count(f"SELECT * FROM {expected} e"),
        rows=sql.count(f"SELECT * FROM {name} t"),
        missing=len(missing),
        missing_of_agents_gone_mid_run=len(missing) - len(unexplained),
        extra=extra[0],
    )


def check_not_emptied(sql: Sql, history: History, table: TableSpec) -> dg.AssetCheckResult:
    """ERROR if no live row is left although this run's API answers had rows for the table
    (`api_rows`); WARN if no live row is left but the materialization before had some."""
    if absent := table_absent(sql, table.name, "not_emptied"):
        return absent
    rows = sql.count(f"SELECT * FROM {sql.current_rows(table.name)} t")
    figures = []
    for materialization, field in zip(
        history.latest(table.name), ("api_rows", "live_rows"), strict=False
    ):
        value = materialization.metadata.get(field) if materialization else None
        figures.append(int(value.value or 0) if isinstance(value, dg.IntMetadataValue) else 0)
    reported, before = [*figures, 0, 0][:2]
    offending = 1 if rows == 0 and (reported or before) else 0
    return check_result(
        table.name,
        "not_emptied",
        (offending, []),
        ERROR if reported else WARN,
        live_rows=rows,
        api_rows_last_run=reported,
        live_rows_at_materialization_before=before,
    )


def check_schema_change(_: Sql, history: History, table: TableSpec) -> dg.AssetCheckResult:
    return check_column_schema_change(history.latest(table.name), table.name)


CheckFn = Callable[[Sql, History], dg.AssetCheckResult]


def _check(
    table: TableSpec, name: str, description: str, blocking: bool, run: CheckFn
) -> tuple[dg.AssetCheckSpec, CheckFn]:
    spec = dg.AssetCheckSpec(
        name=name, asset=table_asset_key(table.name), description=description, blocking=blocking
    )
    return spec, run


def _table_checks(table: TableSpec) -> Iterator[tuple[dg.AssetCheckSpec, CheckFn]]:
    keys = ", ".join(table.primary_key)
    yield _check(
        table,
        "primary_key",
        f"ERROR: the primary key ({keys}) is present and unique in every row.",
        True,
        partial(check_primary_key, table=table),
    )
    for reference in table.references:
        columns = ", ".join(reference.columns)
        yield _check(
            table,
            f"references_{reference.table}",
            f"ERROR: every row's ({columns}) exists in {reference.table}.",
            True,
            partial(check_reference, table=table, reference=reference),
        )
    if table.one_row_per:
        yield _check(
            table,
            f"one_row_per_{table.one_row_per}",
            f"ERROR: exactly one row per {table.one_row_per.replace('_', ' ')} (WARN for extra"
            " rows, or rows missing because their agent was deleted during the run).",
            True,
            partial(check_one_row_per, table=table),
        )
    yield _check(
        table,
        "not_emptied",
        "ERROR if empty while the API reported rows this run; WARN if emptied since the last run.",
        True,
        partial(check_not_emptied, table=table),
    )
    yield _check(
        table,
        "column_schema_change",
        "WARN: the columns, nested tables' included, are those of the materialization before"
        " (the API added a field, changed a field's type or a new tool type appeared).",
        False,
        partial(check_schema_change, table=table),
    )


CHECKS: list[tuple[dg.AssetCheckSpec, CheckFn]] = [
    check for table in TABLES for check in _table_checks(table)
]


@dg.multi_asset_check(
    specs=[spec for spec, _ in CHECKS],
    can_subset=True,
    name="chat_agents_checks",
    pool=POOL,
)
def chat_agents_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """All checks in one step and one warehouse connection, holding the run lock so that no load
    writes while they read; subsettable like the assets. In a run of one workspace's partition
    they check that workspace's rows."""
    execution = context.op_execution_context
    partition = execution.partition_key if execution.has_partition_key else None
    workspace = partition or DEFAULT_WORKSPACE
    pipeline = make_pipeline(workspace=workspace)
    holder = f"Dagster run {execution.run_id} (checks)"
    with one_run_at_a_time(pipeline, holder), pipeline.sql_client() as client:
        sql, history = Sql(client, workspace), History(context.instance, partition)
        for spec, run in CHECKS:
            if spec.key in context.selected_asset_check_keys:
                yield run(sql, history)
