"""What a row looks like in the warehouse: credentials redacted, parent key added, schema hints.

Free-form objects (metadata, a function tool's JSON-schema parameters, a response format's schema,
guardrail thresholds, tool configuration) are JSON columns: flattened, they would add a warehouse
column for every key a user ever put in a tool definition. The source's `max_table_nesting=2`
makes anything three levels down JSON (`tools[].function.parameters`,
`guardrails[].moderation_llm_v1.custom_category_thresholds`,
`completion_args.response_format.json_schema`); the hints below name the rest. Everything else is
left to dlt's schema inference, so unknown fields and unknown tool types are kept as they come.
"""

from typing import Any

from dlt.common.schema.typing import TColumnSchema

from chat_agents_dagster.tables import WORKSPACE

REDACTED = "[redacted]"


def _json_columns(*names: str) -> dict[str, TColumnSchema]:
    # Fresh dicts with explicit names on every call: dlt fills in and keeps the dicts it is given,
    # so dicts shared between resources would rename each other's columns.
    return {name: {"name": name, "data_type": "json"} for name in names}


def agent_columns(*, versions_as_json: bool) -> dict[str, TColumnSchema]:
    """Top-level hints of a table whose rows are Agent objects.

    Only the `agents` table carries an agent's version list as the nested table `agents__versions`
    (the row-count checks join on it); every other Agent table keeps the list as one JSON value.
    """
    return _json_columns(
        "metadata", "completion_args__stop", *(["versions"] if versions_as_json else [])
    )


# The columns the run's record (record.py) and the asset checks read, by table.
_RECORD_COLUMNS: dict[str, dict[str, str]] = {
    "agents": {"id": "text", "version": "bigint", "updated_at": "timestamp"},
    "agent_detail": {"id": "text", "version": "bigint", "updated_at": "timestamp"},
    "agent_versions": {"agent_id": "text", "version": "bigint"},
    "agent_version_detail": {"agent_id": "text", "version": "bigint"},
    "agent_aliases": {
        "agent_id": "text",
        "alias": "text",
        "version": "bigint",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
}


def record_columns(table: str) -> dict[str, TColumnSchema]:
    """Typed hints for the columns every run reads back, the workspace and `deleted_at`."""
    columns: dict[str, TColumnSchema] = {
        name: {"name": name, "data_type": data_type}  # type: ignore[typeddict-item]
        for name, data_type in {WORKSPACE: "text", **_RECORD_COLUMNS[table]}.items()
    }
    columns["deleted_at"] = {"name": "deleted_at", "data_type": "timestamp", "nullable": True}
    return columns


def agent_nested_hints() -> dict[str | tuple[str, ...], Any]:
    """Hints for the nested table `<table>__tools` of Agent rows."""
    return {"tools": {"columns": _json_columns("tool_configuration", "library_ids")}}


# Keys whose value is an object or list on some rows and null on others. dlt cannot type a null
# where it expects an object, and warns once per table and run; an absent key stores the same NULL.
_NULLABLE_CONTAINERS = frozenset(
    {"guardrails", "handoffs", "prediction", "response_format", "authorization"}
    | {"moderation_llm_v1", "moderation_llm_v2", "tool_configuration", "metadata"}
)


def _without_null_containers(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None or k not in _NULLABLE_CONTAINERS}


def _shape_tool(tool: Any) -> Any:
    if not isinstance(tool, dict):
        return tool
    tool = _without_null_containers(tool)
    authorization = tool.get("authorization")
    if isinstance(authorization, dict) and authorization.get("value") is not None:
        tool["authorization"] = {**authorization, "value": REDACTED}
    return tool


def shape_agent(agent: dict[str, Any]) -> dict[str, Any]:
    """An Agent as it is stored. A tool credential (`authorization.value`) is replaced by a marker,
    so the warehouse shows that one is set without holding it; `completion_args.stop`, a string or
    a list in the API, is always a list, so that one JSON column serves both."""
    shaped = _without_null_containers(agent)
    if isinstance(shaped.get("tools"), list):
        shaped["tools"] = [_shape_tool(tool) for tool in shaped["tools"]]
    if isinstance(shaped.get("guardrails"), list):
        shaped["guardrails"] = [
            _without_null_containers(g) if isinstance(g, dict) else g for g in shaped["guardrails"]
        ]
    completion_args = shaped.get("completion_args")
    if isinstance(completion_args, dict):
        completion_args = _without_null_containers(completion_args)
        if isinstance(completion_args.get("stop"), str):
            completion_args["stop"] = [completion_args["stop"]]
        shaped["completion_args"] = completion_args
    return shaped


def current_row(workspace: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row as stored for something the API still has, in its workspace: `deleted_at` is null,
    which also makes a row that was marked deleted live again when its agent or alias comes
    back."""
    return {WORKSPACE: workspace, **shape_agent(row), "deleted_at": None}


def child_row(workspace: str, agent_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A live child row keyed by a plain `agent_id` column (dlt's link would be `_agents_id`)."""
    return {"agent_id": agent_id, **current_row(workspace, row)}
