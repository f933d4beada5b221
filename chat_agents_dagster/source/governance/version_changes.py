"""What changed between two consecutive versions of an agent, from the rows already loaded.

A version is read back as dlt stored it: the root row of `agent_versions` (nested objects
flattened into `a__b` columns, free-form ones as JSON) with its nested tables' rows put back
under it as lists (`tools`, `guardrails`, `handoffs`, and any the API adds). The comparison is
by field group; a field no group names (`name`, `deployment_chat`, a field the API adds) is
reported in `other_fields`, so no change goes unseen.
"""

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

Row = dict[str, Any]
_WORD = re.compile(r"\S+")

KINDS = (
    "model",
    "instructions",
    "description",
    "tools",
    "completion_args",
    "guardrails",
    "handoffs",
    "metadata",
    "other",
)
COMPLETION_ARGS = "completion_args__"
# A version's own bookkeeping, not what it configures.
_NOT_CONFIGURATION = frozenset(
    {"id", "object", "version", "versions", "created_at", "updated_at", "version_message"}
    | {"workspace", "agent_id", "deleted_at"}
)
_GROUPED = frozenset(
    {"model", "instructions", "description", "tools", "guardrails", "handoffs", "metadata"}
)


def plain(value: Any) -> Any:
    """A warehouse value as JSON would hold it, so that DuckDB's and PostgreSQL's compare."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _own(row: Row) -> Row:
    return {key: value for key, value in row.items() if not key.startswith("_dlt_")}


def assemble(roots: Iterable[Row], nested: Mapping[str, Iterable[Row]]) -> dict[str, Row]:
    """Each root row (by its `_dlt_id`) with the rows of its nested tables put back under it.
    `nested` maps a table's path below the root (`tools`, `tools__allowed_tools`) to its rows; a
    list of scalars, stored as rows with one `value` column, comes back as the scalars."""
    by_id: dict[str, Row] = {}
    versions: dict[str, Row] = {}
    for root in roots:
        versions[root["_dlt_id"]] = by_id[root["_dlt_id"]] = dict(root)
    for path in sorted(nested, key=lambda p: p.count("__")):
        # dlt names a nested table after its parent table and the flattened path to the list
        # (`completion_args__stop` under the root, `tools__function__x` under `tools`).
        parent = max((p for p in nested if path.startswith(f"{p}__")), key=len, default="")
        name = path.removeprefix(f"{parent}__") if parent else path
        children: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for row in nested[path]:
            own = _own(row)
            item: Any = own["value"] if set(own) == {"value"} else dict(row)
            if isinstance(item, dict):
                by_id[row["_dlt_id"]] = item
            children[row["_dlt_parent_id"]].append((row["_dlt_list_idx"], item))
        for parent_id, items in children.items():
            if parent_id in by_id:
                by_id[parent_id][name] = [item for _, item in sorted(items, key=lambda i: i[0])]
    return {key: _clean(value) for key, value in versions.items()}


def _clean(row: Row) -> Row:
    return {
        key: [_clean(v) if isinstance(v, dict) else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in _own(row).items()
    }


def _tool_identity(tool: Row) -> tuple[str, str | None]:
    """A tool by type and name: a function's name, a connector's id, an MCP server's URL; a
    built-in tool (web search, code interpreter...) has only its type."""
    name = tool.get("function__name") or tool.get("connector_id") or tool.get("server_url")
    return str(tool.get("type")), None if name is None else str(name)


def _field(key: str) -> str:
    return key.replace("__", ".")


def _changed_fields(before: Row, after: Row) -> list[str]:
    return sorted(
        _field(key)
        for key in before.keys() | after.keys()
        if plain(before.get(key)) != plain(after.get(key))
    )


def _tools(before: list[Row], after: list[Row]) -> dict[str, Any]:
    def grouped(tools: list[Row]) -> dict[tuple[str, str | None], list[Row]]:
        groups: dict[tuple[str, str | None], list[Row]] = defaultdict(list)
        for tool in tools:
            groups[_tool_identity(tool)].append(tool)
        return groups

    old, new = grouped(before), grouped(after)
    added, removed, redefined = [], [], []
    for identity in sorted(old.keys() | new.keys(), key=str):
        kind, name = identity
        was, now = old.get(identity, []), new.get(identity, [])
        for was_tool, now_tool in zip(was, now, strict=False):
            if fields := _changed_fields(was_tool, now_tool):
                redefined.append({"type": kind, "name": name, "fields": fields})
        added += [{"type": kind, "name": name}] * max(0, len(now) - len(was))
        removed += [{"type": kind, "name": name}] * max(0, len(was) - len(now))
    return {"added": added, "removed": removed, "redefined": redefined}


def _canonical(item: Any) -> str:
    return json.dumps(plain(item), sort_keys=True)


def _list_changes(before: list[Any], after: list[Any]) -> tuple[list[Any], list[Any]]:
    """What `after` has that `before` has not, and the reverse, as multisets."""
    remaining = [_canonical(item) for item in before]
    added = []
    for item in after:
        canonical = _canonical(item)
        if canonical in remaining:
            remaining.remove(canonical)
        else:
            added.append(plain(item))
    removed_keys = list(remaining)
    removed = []
    for item in before:
        canonical = _canonical(item)
        if canonical in removed_keys:
            removed_keys.remove(canonical)
            removed.append(plain(item))
    return added, removed


def _key_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": key, "from": plain(before.get(key)), "to": plain(after.get(key))}
        for key in sorted(before.keys() | after.keys())
        if plain(before.get(key)) != plain(after.get(key))
    ]


def _instructions(before: str, after: str) -> tuple[float, int, int]:
    """(similarity 0..1, words added, words removed), compared word by word: a character
    comparison is quadratic in the text's length, and instructions run to thousands of
    characters."""
    matcher = difflib.SequenceMatcher(None, _WORD.findall(before), _WORD.findall(after), False)
    added = removed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            added += j2 - j1
        if tag in ("replace", "delete"):
            removed += i2 - i1
    return round(matcher.ratio(), 4), added, removed


def compare(before: Row, after: Row) -> Row:
    """The columns of `agent_version_changes` for the move from `before` to `after` (two
    assembled versions of one agent), but for the keys."""
    args_before = {
        k.removeprefix(COMPLETION_ARGS): v
        for k, v in before.items()
        if k.startswith(COMPLETION_ARGS)
    }
    args_after = {
        k.removeprefix(COMPLETION_ARGS): v
        for k, v in after.items()
        if k.startswith(COMPLETION_ARGS)
    }
    args = [
        {**change, "key": _field(change["key"])} for change in _key_changes(args_before, args_after)
    ]
    tools = _tools(before.get("tools") or [], after.get("tools") or [])
    guardrails_added, guardrails_removed = _list_changes(
        before.get("guardrails") or [], after.get("guardrails") or []
    )
    handoffs_added, handoffs_removed = _list_changes(
        before.get("handoffs") or [], after.get("handoffs") or []
    )
    metadata = _key_changes(before.get("metadata") or {}, after.get("metadata") or {})
    other = sorted(
        _field(key)
        for key in before.keys() | after.keys()
        if key not in _NOT_CONFIGURATION | _GROUPED
        and not key.startswith(COMPLETION_ARGS)
        and plain(before.get(key)) != plain(after.get(key))
    )
    instructions_before, instructions_after = before.get("instructions"), after.get("instructions")
    similarity, words_added, words_removed = (
        _instructions(instructions_before or "", instructions_after or "")
        if instructions_before != instructions_after
        else (1.0, 0, 0)
    )
    changed = {
        "model": before.get("model") != after.get("model"),
        "instructions": instructions_before != instructions_after,
        "description": before.get("description") != after.get("description"),
        "tools": any(tools.values()),
        "completion_args": bool(args),
        "guardrails": bool(guardrails_added or guardrails_removed),
        "handoffs": bool(handoffs_added or handoffs_removed),
        "metadata": bool(metadata),
        "other": bool(other),
    }
    return {
        "previous_version": before.get("version"),
        "changed_at": after.get("updated_at"),
        "version_message": after.get("version_message"),
        "kinds": ",".join(kind for kind in KINDS if changed[kind]),
        **{f"{kind}_changed": changed[kind] for kind in KINDS},
        "model_before": before.get("model"),
        "model_after": after.get("model"),
        "instructions_similarity": similarity,
        "instructions_words_added": words_added,
        "instructions_words_removed": words_removed,
        "instructions_chars_before": len(instructions_before or ""),
        "instructions_chars_after": len(instructions_after or ""),
        "description_before": before.get("description"),
        "description_after": after.get("description"),
        "tools_added": tools["added"],
        "tools_removed": tools["removed"],
        "tools_redefined": tools["redefined"],
        "completion_args_changes": args,
        "guardrails_added": guardrails_added,
        "guardrails_removed": guardrails_removed,
        "handoffs_added": handoffs_added,
        "handoffs_removed": handoffs_removed,
        "metadata_changes": metadata,
        "other_fields": other,
    }
