"""A Dagster job of the same shape as `chat_agents_job` that does no work: the five table assets
and their checks, all passing at once, on the location's executor and pool. run.py times it with
`dagster job execute` to show what Dagster itself costs per run (run creation, events, exit),
apart from the load and the checks' queries."""

from collections.abc import Iterator

import dagster as dg

from chat_agents_dagster import definitions

_graph = definitions.defs.resolve_asset_graph()
_tables = [key for key in _graph.materializable_asset_keys]
_checks = [_graph.get_check_spec(key) for key in _graph.asset_check_keys]


@dg.multi_asset(specs=[dg.AssetSpec(key) for key in _tables], pool="chat_agents_pipeline")
def tables_doing_nothing() -> Iterator[dg.MaterializeResult]:
    for key in _tables:
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": 0})


@dg.multi_asset_check(specs=_checks, pool="chat_agents_pipeline")
def checks_doing_nothing() -> Iterator[dg.AssetCheckResult]:
    for spec in _checks:
        yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=True)


defs = dg.Definitions(
    assets=[tables_doing_nothing],
    asset_checks=[checks_doing_nothing],
    jobs=[dg.define_asset_job("chat_agents_job", selection=dg.AssetSelection.all())],
    executor=dg.in_process_executor,
)
