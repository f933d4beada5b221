"""A code version per table, derived from the code that loads it, so that Dagster marks a table's
asset as changed (and its materializations carry the version) exactly when that code changes.

A table's version covers its resource function in resources.py (decorator and body), its row in
tables.py, the version of the resource that feeds it (its `data_from`: a transformer receives what
that resource yields), and
the code every table shares: the rest of resources.py and the source's other modules (the API
client, row shaping, the record, the run). The command line (`__main__.py`) loads nothing itself
and is left out. Read from the package's own files when the code location loads: no setting, no
network. The governance tables, derived from these, have one version of their own
(`governance_code_version`), from the governance package, which the five do not share.
"""

import ast
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path

from chat_agents_dagster.tables import GOVERNANCE_TABLES, TABLES, TableSpec

_SOURCE_DIR = Path(__file__).parent
_RESOURCES = "resources.py"
_NOT_LOADING_CODE = frozenset({"__main__.py"})
_FACTORY = "chat_agents_source"


def _digest(*parts: str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:12]


def _feeder(node: ast.FunctionDef) -> str | None:
    """The resource a transformer's decorator names as `data_from`."""
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "data_from" and isinstance(keyword.value, ast.Name):
                    return keyword.value.id
    return None


def _resource_functions(
    resources_text: str, names: set[str]
) -> dict[str, tuple[int, int, str | None]]:
    """The line span (first, last; 1-based) of each resource function, decorators included,
    defined in the source factory, and the resource that feeds it."""
    module = ast.parse(resources_text)
    factory = next(
        node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == _FACTORY
    )
    spans: dict[str, tuple[int, int, str | None]] = {}
    for node in factory.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans[node.name] = (first, node.end_lineno or node.lineno, _feeder(node))
    missing = names - spans.keys()
    if missing:
        raise LookupError(f"{_FACTORY} in {_RESOURCES} defines no function for {sorted(missing)}")
    return spans


def code_versions(
    resources_text: str, shared_texts: Mapping[str, str], tables: tuple[TableSpec, ...] = TABLES
) -> dict[str, str]:
    """Each table's code version from the text of resources.py and of the other modules."""
    lines = resources_text.splitlines(keepends=True)
    spans = _resource_functions(resources_text, {table.name for table in tables})
    own = {name: "".join(lines[first - 1 : last]) for name, (first, last, _) in spans.items()}
    inside = {n for first, last, _ in spans.values() for n in range(first - 1, last)}
    rest_of_resources = "".join(line for n, line in enumerate(lines) if n not in inside)
    shared = _digest(
        rest_of_resources, *(f"{name}\n{text}" for name, text in sorted(shared_texts.items()))
    )
    by_name = {table.name: table for table in tables}
    versions: dict[str, str] = {}

    def version(name: str) -> str:
        if name not in versions:
            feeder = spans[name][2]
            fed_by = version(feeder) if feeder else ""
            spec = json.dumps(asdict(by_name[name]), sort_keys=True, default=str)
            versions[name] = _digest(shared, own[name], spec, fed_by)
        return versions[name]

    for table in tables:
        version(table.name)
    return versions


@cache
def table_code_versions() -> dict[str, str]:
    """The code version of each of the five tables, from this package's files."""
    shared = {
        path.name: path.read_text()
        for path in sorted(_SOURCE_DIR.glob("*.py"))
        if path.name not in _NOT_LOADING_CODE | {_RESOURCES}
    }
    return code_versions((_SOURCE_DIR / _RESOURCES).read_text(), shared)


@cache
def governance_code_version() -> str:
    """The code version of the governance tables: their package's files and their rows in
    tables.py."""
    texts = [
        f"{path.name}\n{path.read_text()}"
        for path in sorted((_SOURCE_DIR / "governance").glob("*.py"))
    ]
    specs = [json.dumps(asdict(table), sort_keys=True) for table in GOVERNANCE_TABLES]
    return _digest(*texts, *specs)
