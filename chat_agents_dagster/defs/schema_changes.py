"""The `column_schema_change` check: what the API's answers did to a table's columns since the
materialization before, nested tables included.

dlt evolves the schema instead of failing the load: a new field becomes a column, a value that no
longer fits its column's type gets a variant column (`deployment_chat__v_text`), an object where
there was a string is flattened into new columns, and a new tool type adds columns to
`<table>__tools` or a nested table of its own. The load goes on; this check makes the change
visible. Dagster's `build_column_schema_change_checks` compares `dagster/column_schema` only,
which dagster-dlt fills with the table's own columns: a new tool type, which changes only nested
tables, would pass it. This check also compares the schemas dagster-dlt reports for each nested
table (metadata named after the nested table).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from chat_agents_dagster.defs.translator import table_asset_key

COLUMN_SCHEMA = "dagster/column_schema"

Columns = dict[str, str]  # column name -> dlt data type


def table_schemas(table: str, metadata: Mapping[str, Any]) -> dict[str, Columns]:
    """The table's and its nested tables' columns, by table name, as one materialization
    recorded them."""
    schemas: dict[str, Columns] = {}
    for key, value in metadata.items():
        if not isinstance(value, dg.TableSchemaMetadataValue):
            continue
        if key == COLUMN_SCHEMA or key.startswith(f"{table}__"):
            name = table if key == COLUMN_SCHEMA else key
            schemas[name] = {column.name: column.type for column in value.value.columns}
    return schemas


def schema_changes(before: dict[str, Columns], after: dict[str, Columns]) -> dict[str, list[str]]:
    """Added and removed tables and columns, and columns whose type changed, as
    `table.column (type)` lines."""
    changes: dict[str, list[str]] = {"added": [], "removed": [], "type_changed": []}
    for table in sorted(before.keys() | after.keys()):
        old, new = before.get(table, {}), after.get(table, {})
        changes["added"] += [f"{table}.{name} ({new[name]})" for name in new if name not in old]
        changes["removed"] += [f"{table}.{name} ({old[name]})" for name in old if name not in new]
        changes["type_changed"] += [
            f"{table}.{name} ({old[name]} -> {new[name]})"
            for name in new
            if name in old and old[name] != new[name]
        ]
    return changes


def _held_rows(metadata: Mapping[str, Any]) -> bool:
    value = metadata.get("dagster/row_count")
    return not isinstance(value, dg.IntMetadataValue) or bool(value.value)


def check_column_schema_change(
    materializations: Sequence[dg.AssetMaterialization | None], table: str
) -> dg.AssetCheckResult:
    """Passes unless the latest materialization's columns (nested tables included) differ from
    the one before (`materializations`: the latest first). The first materialization has nothing
    to compare with and passes, and so does the first with rows after ones of an empty table
    (only its declared columns)."""
    schemas = [table_schemas(table, m.metadata) if m else {} for m in materializations]
    before = materializations[1] if len(materializations) > 1 else None
    if (
        not schemas
        or not schemas[0]
        or before is None
        or not schemas[1]
        or not _held_rows(before.metadata)
    ):
        changes: dict[str, list[str]] = {"added": [], "removed": [], "type_changed": []}
        description = "Nothing to compare with: no earlier materialization with a column schema."
    else:
        changes = schema_changes(before=schemas[1], after=schemas[0])
        description = (
            "; ".join(
                f"{kind.replace('_', ' ')}: {', '.join(lines)}"
                for kind, lines in changes.items()
                if lines
            )
            or "No change since the materialization before."
        )
    return dg.AssetCheckResult(
        asset_key=table_asset_key(table),
        check_name="column_schema_change",
        passed=not any(changes.values()),
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "added_columns": dg.MetadataValue.json(changes["added"]),
            "removed_columns": dg.MetadataValue.json(changes["removed"]),
            "type_changes": dg.MetadataValue.json(changes["type_changed"]),
        },
    )
