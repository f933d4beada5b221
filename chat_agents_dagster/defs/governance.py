"""The governance tables as Dagster assets below the loaded ones, and their checks.

`agent_alias_history` hangs under `agent_aliases` and `agent_version_changes` under
`agent_versions`: one op derives both in the warehouse (no API request), after the load and its
blocking checks in the same run. Their checks run in an op of their own, as the load's checks
block this op and so cannot share a step with checks of what it writes.
"""

from collections.abc import Callable, Iterator
from functools import partial

import dagster as dg
from pydantic import Field

from chat_agents_dagster.defs.assets import POOL, run_workspace, workspace_partitions
from chat_agents_dagster.defs.checks import (
    ERROR,
    Sql,
    check_primary_key,
    check_result,
    rows_missing,
    table_absent,
)
from chat_agents_dagster.defs.deployment import DeploymentSettings
from chat_agents_dagster.defs.translator import GROUP, qualified_table_name, table_asset_key
from chat_agents_dagster.source import (
    FULL_REFRESH_VARIABLE,
    governance_code_version,
    make_pipeline,
    one_run_at_a_time,
    run_governance,
)
from chat_agents_dagster.tables import (
    ALIAS_HISTORY,
    DEFAULT_WORKSPACE,
    GOVERNANCE_TABLES,
    VERSION_CHANGES,
    WORKSPACE,
)

OP_NAME = "chat_agents_governance"


class GovernanceConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Compare every version again (agent_version_changes rebuilt to the same"
        " content); the alias history is kept, as the API cannot give it back."
        f" {FULL_REFRESH_VARIABLE}=true does the same.",
    )


def governance_asset_keys() -> list[dg.AssetKey]:
    return [table_asset_key(table.name) for table in GOVERNANCE_TABLES]


def build_governance_assets(
    settings: DeploymentSettings, freshness: dg.FreshnessPolicy | None
) -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(
            key=table_asset_key(table.name),
            deps=[table_asset_key(table.parent or "")],
            description=table.description,
            group_name=GROUP,
            kinds={"dlt"},
            tags={"chat_agents/table": table.name, "chat_agents/source": "warehouse"},
            metadata={
                "dagster/table_name": qualified_table_name(table.name),
                "chat_agents/primary_key": ", ".join(table.primary_key),
            },
            freshness_policy=freshness,
            owners=list(settings.owners),
            code_version=governance_code_version(),
            skippable=True,
        )
        for table in GOVERNANCE_TABLES
    ]

    @dg.multi_asset(
        specs=specs,
        name=OP_NAME,
        can_subset=True,
        pool=POOL,
        partitions_def=workspace_partitions(settings),
    )
    def chat_agents_governance(
        context: dg.AssetExecutionContext, config: GovernanceConfig
    ) -> Iterator[dg.MaterializeResult]:
        workspace = run_workspace(context)
        report = run_governance(
            workspace,
            tables=[key.path[-1] for key in context.selected_asset_keys],
            full_refresh=config.full_refresh,
            holder=f"Dagster run {context.run.run_id} (governance)",
            log=context.log,
            alone=len(settings.workspaces) == 1,
        )
        for table in report.tables:
            metadata: dict[str, dg.RawMetadataValue] = {
                "rows_written": dg.MetadataValue.int(report.written[table]),
                "dagster/row_count": dg.MetadataValue.int(report.rows[table]),
                "full_refresh": dg.MetadataValue.bool(report.full_refresh),
                "workspace": dg.MetadataValue.text(workspace),
                "dagster/table_name": qualified_table_name(table),
            }
            if table == ALIAS_HISTORY:
                metadata["open_intervals"] = dg.MetadataValue.int(report.open_intervals)
            yield dg.MaterializeResult(asset_key=table_asset_key(table), metadata=metadata)

    return chat_agents_governance


def _every_row(sql: Sql, table: str) -> str:
    """The workspace's rows of `table`, those marked deleted included, as a subquery."""
    return f"(SELECT * FROM {sql.table(table)} WHERE {sql.names(WORKSPACE)[0]} = '{sql.workspace}')"


def check_no_overlap(sql: Sql) -> dg.AssetCheckResult:
    check = "no_overlapping_intervals"
    if absent := table_absent(sql, ALIAS_HISTORY, check):
        return absent
    agent_id, alias, valid_from, valid_to = sql.names("agent_id", "alias", "valid_from", "valid_to")
    history = _every_row(sql, ALIAS_HISTORY)
    query = (
        f"SELECT a.{agent_id}, a.{alias}, a.{valid_from}, b.{valid_from} AS next_from"
        f" FROM {history} a JOIN {history} b"
        f" ON a.{agent_id} = b.{agent_id} AND a.{alias} = b.{alias}"
        f" AND a.{valid_from} < b.{valid_from}"
        f" AND (a.{valid_to} IS NULL OR a.{valid_to} > b.{valid_from})"
    )
    return check_result(ALIAS_HISTORY, check, sql.offending(query), ERROR)


def check_one_open_row(sql: Sql) -> dg.AssetCheckResult:
    """Every live alias has exactly one open interval, pointing where the alias points; no
    interval of a deleted alias is open."""
    check = "one_open_row_per_live_alias"
    if absent := table_absent(sql, ALIAS_HISTORY, check, "agent_aliases"):
        return absent
    agent_id, alias, version, valid_to = sql.names("agent_id", "alias", "version", "valid_to")
    live = f"{sql.current_rows('agent_aliases')} l"
    opened = f"(SELECT * FROM {_every_row(sql, ALIAS_HISTORY)} h WHERE h.{valid_to} IS NULL) o"
    on = f"o.{agent_id} = l.{agent_id} AND o.{alias} = l.{alias}"
    not_one = (
        f"SELECT l.{agent_id}, l.{alias}, COUNT(o.{alias}) AS open_rows FROM {live}"
        f" LEFT JOIN {opened} ON {on} GROUP BY l.{agent_id}, l.{alias}"
        f" HAVING COUNT(o.{alias}) <> 1"
    )
    elsewhere = (
        f"SELECT l.{agent_id}, l.{alias}, l.{version}, o.{version} AS open_version FROM {live}"
        f" JOIN {opened} ON {on} WHERE o.{version} <> l.{version}"
    )
    of_gone = (
        f"SELECT o.{agent_id}, o.{alias} FROM {opened} LEFT JOIN {live} ON {on}"
        f" WHERE l.{alias} IS NULL"
    )
    found = [sql.offending(query) for query in (not_one, elsewhere, of_gone)]
    return check_result(
        ALIAS_HISTORY,
        check,
        (sum(n for n, _ in found), [row for _, sample in found for row in sample]),
        ERROR,
        live_aliases=sql.count(f"SELECT * FROM {live}"),
        live_aliases_without_one_open_row=found[0][0],
        open_rows_pointing_elsewhere=found[1][0],
        open_rows_of_deleted_aliases=found[2][0],
    )


def check_points_at_version(sql: Sql) -> dg.AssetCheckResult:
    """Every interval's version is a loaded version of its agent (deleted agents' included).
    A full refresh forgets agents deleted before it, as the API no longer lists them, while the
    history keeps their intervals: those are counted, not failed."""
    check = "points_at_existing_version"
    if absent := table_absent(sql, ALIAS_HISTORY, check, "agent_versions"):
        return absent
    agent_id, alias, version, valid_from = sql.names("agent_id", "alias", "version", "valid_from")
    query = (
        f"SELECT h.{agent_id}, h.{alias}, h.{valid_from}, h.{version}"
        f" FROM {_of_loaded_agents(sql, ALIAS_HISTORY, True)} h"
        f" LEFT JOIN {_every_row(sql, 'agent_versions')} v"
        f" ON v.{agent_id} = h.{agent_id} AND v.{version} = h.{version}"
        f" WHERE v.{version} IS NULL"
    )
    forgotten = _of_loaded_agents(sql, ALIAS_HISTORY, False)
    return check_result(
        ALIAS_HISTORY,
        check,
        sql.offending(query),
        ERROR,
        intervals_of_agents_no_longer_loaded=sql.count(f"SELECT * FROM {forgotten} f"),
    )


def _consecutive_pairs(sql: Sql) -> str:
    """(agent_id, version, previous_version) of every loaded version but each agent's first."""
    agent_id, version, previous = sql.names("agent_id", "version", "previous_version")
    lagged = (
        f"SELECT {agent_id}, {version}, LAG({version}) OVER (PARTITION BY {agent_id}"
        f" ORDER BY {version}) AS {previous} FROM {_every_row(sql, 'agent_versions')} v"
    )
    return f"(SELECT * FROM ({lagged}) lagged WHERE {previous} IS NOT NULL)"


def _of_loaded_agents(sql: Sql, table: str, loaded: bool) -> str:
    """The workspace's rows of `table` whose agent agent_versions holds (or, not `loaded`, does
    not hold any more: a full refresh of the load forgets agents deleted before it, and the
    governance tables keep their rows), as a subquery."""
    (agent_id,) = sql.names("agent_id")
    known = f"{agent_id} IN (SELECT {agent_id} FROM {_every_row(sql, 'agent_versions')} k)"
    return f"(SELECT * FROM {_every_row(sql, table)} t WHERE {'' if loaded else 'NOT '}{known})"


def _pair_check(sql: Sql, check: str, of_changes: bool) -> dg.AssetCheckResult:
    if absent := table_absent(sql, VERSION_CHANGES, check, "agent_versions"):
        return absent
    keys = ("agent_id", "version", "previous_version")
    changes, pairs = _of_loaded_agents(sql, VERSION_CHANGES, True), _consecutive_pairs(sql)
    left, right = (changes, pairs) if of_changes else (pairs, changes)
    query = rows_missing(sql, left, sql.cols(keys, "l"), right, sql.cols(keys, "r"))
    forgotten = _of_loaded_agents(sql, VERSION_CHANGES, False)
    return check_result(
        VERSION_CHANGES,
        check,
        sql.offending(query),
        ERROR,
        consecutive_pairs=sql.count(f"SELECT * FROM {pairs} p"),
        rows=sql.count(f"SELECT * FROM {changes} c"),
        rows_of_agents_no_longer_loaded=sql.count(f"SELECT * FROM {forgotten} f"),
    )


def check_one_row_per_pair(sql: Sql) -> dg.AssetCheckResult:
    """Every row compares a version with the one loaded just before it."""
    return _pair_check(sql, "one_row_per_consecutive_pair", of_changes=True)


def check_every_version(sql: Sql) -> dg.AssetCheckResult:
    """Every loaded version but an agent's first has its row."""
    return _pair_check(sql, "every_version_accounted_for", of_changes=False)


CheckFn = Callable[[Sql], dg.AssetCheckResult]


def _spec(table: str, name: str, description: str) -> dg.AssetCheckSpec:
    # Blocking, as the load's ERROR checks are: a failed one fails the run, and so alerts.
    return dg.AssetCheckSpec(
        name=name, asset=table_asset_key(table), description=description, blocking=True
    )


GOVERNANCE_CHECKS: list[tuple[dg.AssetCheckSpec, CheckFn]] = [
    *(
        (
            _spec(
                table.name,
                "primary_key",
                f"ERROR: the primary key ({', '.join(table.primary_key)}) is present and unique"
                " in every row.",
            ),
            partial(check_primary_key, _=None, table=table),
        )
        for table in GOVERNANCE_TABLES
    ),
    (
        _spec(
            ALIAS_HISTORY,
            "no_overlapping_intervals",
            "ERROR: no two intervals of one alias overlap.",
        ),
        check_no_overlap,
    ),
    (
        _spec(
            ALIAS_HISTORY,
            "one_open_row_per_live_alias",
            "ERROR: every live alias has exactly one open interval (valid_to null), at the version"
            " it points at; no deleted alias has one.",
        ),
        check_one_open_row,
    ),
    (
        _spec(
            ALIAS_HISTORY,
            "points_at_existing_version",
            "ERROR: every interval points at a version of its agent that agent_versions holds"
            " (of agents it still holds: a full refresh forgets agents deleted before it).",
        ),
        check_points_at_version,
    ),
    (
        _spec(
            VERSION_CHANGES,
            "one_row_per_consecutive_pair",
            "ERROR: every row compares a version with the version loaded just before it (rows"
            " of agents a full refresh forgot are kept, and counted).",
        ),
        check_one_row_per_pair,
    ),
    (
        _spec(
            VERSION_CHANGES,
            "every_version_accounted_for",
            "ERROR: every version but an agent's first has its row.",
        ),
        check_every_version,
    ),
]


@dg.multi_asset_check(
    specs=[spec for spec, _ in GOVERNANCE_CHECKS],
    can_subset=True,
    name="chat_agents_governance_checks",
    pool=POOL,
)
def chat_agents_governance_checks(
    context: dg.AssetCheckExecutionContext,
) -> Iterator[dg.AssetCheckResult]:
    """The governance tables' checks, in one step holding the run lock, of the run's workspace."""
    execution = context.op_execution_context
    workspace = execution.partition_key if execution.has_partition_key else DEFAULT_WORKSPACE
    pipeline = make_pipeline(workspace=workspace)
    holder = f"Dagster run {execution.run_id} (governance checks)"
    with one_run_at_a_time(pipeline, holder), pipeline.sql_client() as client:
        sql = Sql(client, workspace)
        for spec, run in GOVERNANCE_CHECKS:
            if spec.key in context.selected_asset_check_keys:
                yield run(sql)
