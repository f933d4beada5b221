"""A Dagster job of the same shape as `chat_agents_job` that does no work: its four steps (the
five loaded tables, their checks, the two governance tables below them, their checks), all
passing at once, on the location's executor and pool. run.py times it with `dagster job execute`
to show what Dagster itself costs per run (run creation, events, exit), apart from the load, the
derivation and the checks' queries."""

from collections.abc import Iterator

import dagster as dg

from chat_agents_dagster import definitions
from chat_agents_dagster.defs.governance import governance_asset_keys

_graph = definitions.defs.resolve_asset_graph()
_governed = set(governance_asset_keys())
# In lineage order, as a multi-asset yields its outputs.
_keys = [key for key in _graph.toposorted_asset_keys if key in _graph.materializable_asset_keys]
_steps = {
    "tables": [key for key in _keys if key not in _governed],
    "governance": [key for key in _keys if key in _governed],
}


def _doing_nothing(
    name: str, keys: list[dg.AssetKey]
) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    specs = [dg.AssetSpec(key, deps=_graph.get(key).parent_keys) for key in keys]
    checks = [
        _graph.get_check_spec(check)
        for check in _graph.asset_check_keys
        if check.asset_key in set(keys)
    ]

    @dg.multi_asset(specs=specs, name=f"{name}_doing_nothing", pool="chat_agents_pipeline")
    def materialize() -> Iterator[dg.MaterializeResult]:
        for key in keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": 0})

    @dg.multi_asset_check(
        specs=checks, name=f"{name}_checks_doing_nothing", pool="chat_agents_pipeline"
    )
    def check() -> Iterator[dg.AssetCheckResult]:
        for spec in checks:
            yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=True)

    return materialize, check


_built = [_doing_nothing(name, keys) for name, keys in _steps.items()]
defs = dg.Definitions(
    assets=[materialize for materialize, _ in _built],
    asset_checks=[check for _, check in _built],
    jobs=[dg.define_asset_job("chat_agents_job", selection=dg.AssetSelection.all())],
    executor=dg.in_process_executor,
)
