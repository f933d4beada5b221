import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Mistral agents in the warehouse")

with app.setup:
    # What the warehouse holds, pictured for the people who govern it. Reads only, through dlt's
    # `pipeline.dataset()`, on the pipeline `chat-agents-load` and the Dagster job load into, so the
    # same settings (DESTINATION_TYPE, DESTINATION__DUCKDB__CREDENTIALS, ...) pick the warehouse.
    # Run from the repository root: `marimo edit notebooks/agents.py` (or `marimo run`).
    import json
    from collections.abc import Iterable
    from typing import Any

    import altair as alt
    import dlt
    import marimo as mo
    import pandas as pd
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    from chat_agents_dagster.source import CHANGE_KINDS, DEFAULT_DUCKDB_FILE, make_pipeline
    from chat_agents_dagster.tables import GOVERNANCE_SOURCE_NAME

    # Oldest-to-newest version spans up to these lengths are charted per hour, then per day;
    # longer ones per week (weeks start on Monday).
    HOURLY_UP_TO = pd.Timedelta(days=3)
    DAILY_UP_TO = pd.Timedelta(days=120)
    PERIOD_LENGTH = {
        "hour": pd.Timedelta(hours=1),
        "day": pd.Timedelta(days=1),
        "week": pd.Timedelta(weeks=1),
    }
    POINTS_AT = ["the active version", "an older version", "a newer version"]
    WEEK = pd.Timedelta(weeks=1)
    # dlt's dataset resolves `*` only over the tables of its own schema: columns by name.
    CHANGE_COLUMNS = [
        "workspace",
        "agent_id",
        "version",
        "previous_version",
        "changed_at",
        "kinds",
        *(f"{kind}_changed" for kind in CHANGE_KINDS),
        "model_before",
        "model_after",
        "instructions_similarity",
        "instructions_words_added",
        "instructions_words_removed",
        "tools_added",
        "tools_removed",
        "tools_redefined",
        "completion_args_changes",
    ]


@app.function
def read(
    dataset: dlt.Dataset, loaded: set[str], sql: str, tables: Iterable[str], columns: list[str]
) -> pd.DataFrame:
    """The query's rows; no rows, with these columns, while a table it reads was never loaded
    (a fresh warehouse, or an organisation whose agents have no tools at all)."""
    if not set(tables) <= loaded:
        return pd.DataFrame(columns=columns)
    try:
        frame = dataset(sql).df()
    except DatabaseUndefinedRelation:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(columns=columns) if frame is None else frame


@app.function
def period_of(created: pd.Series) -> str:
    """'hour', 'day' or 'week': the finest period that keeps the timeline readable."""
    if created.empty:
        return "day"
    span = created.max() - created.min()
    return "hour" if span <= HOURLY_UP_TO else "day" if span <= DAILY_UP_TO else "week"


@app.function
def count_per_period(created: pd.Series, period: str) -> pd.DataFrame:
    """Versions created in each period from the first to the last, empty periods included."""
    if created.empty:
        empty = pd.Series(dtype="datetime64[us, UTC]")
        return pd.DataFrame({"period_start": empty, "period_end": empty, "versions": []})
    created = pd.to_datetime(created, utc=True)
    step = PERIOD_LENGTH[period]
    if period == "week":
        starts = created.dt.floor("D") - pd.to_timedelta(created.dt.day_of_week, unit="D")
    else:
        starts = created.dt.floor(step)
    counts = starts.value_counts().sort_index()
    timeline = pd.date_range(counts.index.min(), counts.index.max(), freq=step)
    counts = counts.reindex(timeline, fill_value=0)
    return pd.DataFrame(
        {
            "period_start": counts.index,
            "period_end": counts.index + step,
            "versions": counts.to_numpy(),
        }
    )


@app.function
def decoded(value: Any) -> Any:
    """A JSON column's value: text on DuckDB, already decoded on other destinations."""
    return json.loads(value) if isinstance(value, str) else value


@app.function
def week_of(instants: pd.Series) -> pd.Series:
    """The Monday (00:00 UTC) of each instant's week."""
    instants = pd.to_datetime(instants, utc=True)
    return instants.dt.floor("D") - pd.to_timedelta(instants.dt.day_of_week, unit="D")


@app.function
def changes_per_week(changes: pd.DataFrame) -> pd.DataFrame:
    """Changes of each kind per week (a version that changed two kinds counts under both)."""
    columns = ["week_start", "week_end", "kind", "changes"]
    if changes.empty:
        return pd.DataFrame(columns=columns)
    weeks = week_of(changes["changed_at"])
    counted = pd.concat(
        [
            pd.DataFrame(
                {"week_start": weeks[changes[f"{kind}_changed"].astype(bool)], "kind": kind}
            )
            for kind in CHANGE_KINDS
        ]
    )
    if counted.empty:
        return pd.DataFrame(columns=columns)
    counted = counted.groupby(["week_start", "kind"]).size().reset_index(name="changes")
    counted["week_end"] = counted["week_start"] + WEEK
    return counted[columns].sort_values(["week_start", "kind"], ignore_index=True)


@app.function
def what_changed(row: Any) -> str:
    """One version's changes in a line: model, tools, completion arguments, instructions..."""
    parts = []
    if row.model_changed:
        parts.append(f"model {row.model_before} -> {row.model_after}")
    if row.instructions_changed:
        parts.append(
            f"instructions edited (+{row.instructions_words_added}"
            f" -{row.instructions_words_removed} words, similarity"
            f" {row.instructions_similarity:.2f})"
        )
    tools = [
        *(
            f"+{t['type']}" + (f" {t['name']}" if t["name"] else "")
            for t in decoded(row.tools_added)
        ),
        *(
            f"-{t['type']}" + (f" {t['name']}" if t["name"] else "")
            for t in decoded(row.tools_removed)
        ),
        *(f"~{t['type']} {t['name']}" for t in decoded(row.tools_redefined)),
    ]
    if tools:
        parts.append("tools " + ", ".join(tools))
    arguments = [
        f"{c['key']} {json.dumps(c['from'])} -> {json.dumps(c['to'])}"
        for c in decoded(row.completion_args_changes)
    ]
    if arguments:
        parts.append("completion args " + ", ".join(arguments))
    named = {"model", "instructions", "tools", "completion_args"}
    parts += [
        kind for kind in CHANGE_KINDS if kind not in named and getattr(row, f"{kind}_changed")
    ]
    return "; ".join(parts) or "nothing"


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    # Your Mistral agents, in pictures

    Every chart reads the warehouse that `chat-agents-load` or the Dagster job `chat_agents_job`
    loads, through dlt's `pipeline.dataset()`. Agents deleted in Mistral keep their rows in the
    warehouse with `deleted_at` set: the charts count **live** agents only, and the counts at the
    top say how many deleted ones are kept. Re-run the notebook after a load to see it.
    """)
    return


@app.cell
def _():
    pipeline = make_pipeline()
    dataset = pipeline.dataset()
    # The governance tables are in the same dataset under a schema of their own.
    governance = pipeline.dataset(schema=GOVERNANCE_SOURCE_NAME)
    loaded = set(dataset.tables) | set(governance.tables)
    return dataset, governance, loaded, pipeline


@app.cell(hide_code=True)
def _(loaded: set[str], pipeline: dlt.Pipeline):
    _where = f"dataset `{pipeline.dataset_name}` on **{pipeline.destination.destination_name}**"
    if pipeline.destination.destination_name == "duckdb":
        # The file only: other destinations' credentials may hold a password.
        _file: str = dlt.secrets.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE
        _where += f" (`{_file}`)"
    mo.output.replace(
        mo.md(f"Reading {_where}.")
        if "agents" in loaded
        else mo.callout(
            mo.md(
                f"Nothing loaded into {_where} yet: run `chat-agents-load` (or `chat_agents_job`"
                " in Dagster) from the repository root, then re-run this notebook."
            ),
            kind="warn",
        )
    )
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    agent_counts = read(
        dataset,
        loaded,
        "SELECT CASE WHEN deleted_at IS NULL THEN 'live' ELSE 'deleted' END AS state,"
        " COUNT(*) AS agents FROM agents GROUP BY 1",
        ["agents"],
        ["state", "agents"],
    )
    live_versions = read(
        dataset,
        loaded,
        "SELECT COUNT(*) AS versions FROM agent_versions WHERE deleted_at IS NULL",
        ["agent_versions"],
        ["versions"],
    )
    _by_state = dict(zip(agent_counts["state"], agent_counts["agents"], strict=True))
    mo.hstack(
        [
            mo.stat(int(_by_state.get("live", 0)), label="live agents"),
            mo.stat(int(live_versions["versions"].sum()), label="versions of live agents"),
            mo.stat(int(_by_state.get("deleted", 0)), label="deleted agents kept"),
        ],
        justify="start",
    )
    return agent_counts, live_versions


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Workspaces side by side

    Each Mistral workspace (one API key each, `CHAT_AGENTS_WORKSPACES`) loads into the same
    tables, every row marked with its `workspace`, so every chart below counts all of them at
    once. Live agents, their versions and their aliases, per workspace:
    """)
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    _agents = read(
        dataset,
        loaded,
        "SELECT workspace, COUNT(*) AS agents FROM agents WHERE deleted_at IS NULL"
        " GROUP BY workspace",
        ["agents"],
        ["workspace", "agents"],
    )
    _counts = [
        read(
            dataset,
            loaded,
            f"SELECT workspace, COUNT(*) AS {table.removeprefix('agent_')} FROM {table}"
            " WHERE deleted_at IS NULL GROUP BY workspace",
            [table],
            ["workspace", table.removeprefix("agent_")],
        )
        for table in ("agent_versions", "agent_aliases")
    ]
    workspaces = _agents
    for _frame in _counts:
        workspaces = workspaces.merge(_frame, on="workspace", how="left")
    workspaces = (
        workspaces.fillna(0)
        .astype({"agents": int, "versions": int, "aliases": int})
        .sort_values("workspace", ignore_index=True)
    )
    workspaces_chart = (
        alt.Chart(
            workspaces.melt("workspace", var_name="what", value_name="count"),
            title="Live agents, versions and aliases per workspace",
        )
        .mark_bar()
        .encode(
            x=alt.X("count:Q", title=None, axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("workspace:N", title=None),
            color=alt.Color("what:N", title=None),
            yOffset="what:N",
            tooltip=["workspace:N", "what:N", "count:Q"],
        )
        .properties(width="container")
    )
    mo.vstack([workspaces_chart, mo.ui.table(workspaces, selection=None)])
    return workspaces, workspaces_chart


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Agents by model

    Which model each live agent answers with: the model of its **active** version (an agent
    rolled back to an older version counts under that version's model).
    """)
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    agents_by_model = read(
        dataset,
        loaded,
        "SELECT model, COUNT(*) AS agents FROM agents WHERE deleted_at IS NULL"
        " GROUP BY model ORDER BY agents DESC, model",
        ["agents"],
        ["model", "agents"],
    )
    agents_by_model_chart = (
        alt.Chart(agents_by_model, title="Live agents by model")
        .mark_bar()
        .encode(
            x=alt.X("agents:Q", title="live agents", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("model:N", sort="-x", title=None),
            tooltip=["model:N", "agents:Q"],
        )
        .properties(width="container")
    )
    agents_by_model_chart
    return agents_by_model, agents_by_model_chart


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Tool types in use

    How many live agents have each type of tool on their active version (`web_search`,
    `code_interpreter`, `document_library`, `function`, connectors, ...), and how many such tools
    they have in all. A connector's credential is stored as `[redacted]`, never in clear.
    """)
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    tool_types = read(
        dataset,
        loaded,
        # agents__tools holds one row per tool of each agent, linked by dlt's _dlt_parent_id.
        "SELECT t.type AS tool_type, COUNT(DISTINCT a.id) AS agents, COUNT(*) AS tools"
        " FROM agents__tools AS t JOIN agents AS a ON t._dlt_parent_id = a._dlt_id"
        " WHERE a.deleted_at IS NULL GROUP BY t.type ORDER BY agents DESC, tool_type",
        ["agents", "agents__tools"],
        ["tool_type", "agents", "tools"],
    )
    tool_types_chart = (
        alt.Chart(tool_types, title="Live agents using each tool type")
        .mark_bar()
        .encode(
            x=alt.X("agents:Q", title="live agents", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("tool_type:N", sort="-x", title=None),
            tooltip=["tool_type:N", "agents:Q", alt.Tooltip("tools:Q", title="tools in all")],
        )
        .properties(width="container")
    )
    tool_types_chart
    return tool_types, tool_types_chart


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Versions created over time

    Every change to an agent creates a version; versions never change afterwards. A version's
    `updated_at` is when it was created (its `created_at` is the agent's creation time, the same
    on every version). Versions of live agents, per hour, day or week depending on the span.
    """)
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    versions = read(
        dataset,
        loaded,
        "SELECT agent_id, version, updated_at AS created FROM agent_versions"
        " WHERE deleted_at IS NULL",
        ["agent_versions"],
        ["agent_id", "version", "created"],
    )
    period = period_of(versions["created"])
    versions_over_time = count_per_period(versions["created"], period)
    versions_over_time_chart = (
        alt.Chart(versions_over_time, title=f"Versions created per {period}")
        .mark_bar(stroke="white")
        .encode(
            # Each bar spans its whole period.
            x=alt.X("period_start:T", title=f"{period} (UTC)"),
            x2="period_end:T",
            y=alt.Y("versions:Q", title="versions created", axis=alt.Axis(tickMinStep=1)),
            y2=alt.datum(0),
            tooltip=[alt.Tooltip("period_start:T", title=f"{period} from"), "versions:Q"],
        )
        .properties(width="container")
    )
    versions_over_time_chart
    return period, versions, versions_over_time, versions_over_time_chart


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Which alias points where

    An alias (`production`, `staging`, ...) names one version of an agent, and callers can pin
    it. The chart shows, for each alias name, whether it points at the agent's **active**
    version, an older one, or a newer one (the agent was rolled back but the alias was not).
    The table lists every alias of every live agent; search or filter it.
    """)
    return


@app.cell
def _(dataset: dlt.Dataset, loaded: set[str]):
    aliases = read(
        dataset,
        loaded,
        "SELECT l.workspace, a.name AS agent, l.agent_id, l.alias, l.version,"
        " a.version AS active_version, l.updated_at AS pointed_at"
        " FROM agent_aliases AS l JOIN agents AS a"
        " ON l.workspace = a.workspace AND l.agent_id = a.id"
        " WHERE l.deleted_at IS NULL AND a.deleted_at IS NULL"
        " ORDER BY l.workspace, agent, l.agent_id, l.alias",
        ["agents", "agent_aliases"],
        ["workspace", "agent", "agent_id", "alias", "version", "active_version", "pointed_at"],
    )
    aliases["points_at"] = [
        POINTS_AT[0] if alias == active else POINTS_AT[1] if alias < active else POINTS_AT[2]
        for alias, active in zip(aliases["version"], aliases["active_version"], strict=True)
    ]
    alias_targets = (
        aliases.groupby(["alias", "points_at"]).size().reset_index(name="agents")
        if len(aliases)
        else pd.DataFrame(columns=["alias", "points_at", "agents"])
    )
    alias_targets_chart = (
        alt.Chart(alias_targets, title="Where each alias points")
        .mark_bar()
        .encode(
            x=alt.X("agents:Q", title="live agents", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("alias:N", sort="-x", title=None),
            color=alt.Color("points_at:N", title="points at", scale=alt.Scale(domain=POINTS_AT)),
            tooltip=["alias:N", "points_at:N", "agents:Q"],
        )
        .properties(width="container")
    )
    mo.vstack([alias_targets_chart, mo.ui.table(aliases, selection=None, page_size=20)])
    return alias_targets, alias_targets_chart, aliases


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## An alias over time

    `agent_alias_history` keeps every version an alias has pointed at, with the interval it held
    (dated by the API's `updated_at` where it tells, by the run that saw the move where it does
    not; see `docs/governance.md`). Choose an agent and alias: the bars are the versions it
    pointed at, an open bar runs to now. It starts on the alias that moved most.
    """)
    return


@app.cell
def _(governance: dlt.Dataset, loaded: set[str]):
    alias_history = read(
        governance,
        loaded,
        "SELECT h.workspace, h.agent_id, COALESCE(a.name, h.agent_id) AS agent, h.alias,"
        " h.version, h.valid_from, h.valid_to, h.valid_from_source, h.valid_to_source"
        " FROM agent_alias_history AS h LEFT JOIN agents AS a"
        " ON h.workspace = a.workspace AND h.agent_id = a.id"
        " ORDER BY h.workspace, h.agent_id, h.alias, h.valid_from",
        ["agents", "agent_alias_history"],
        [
            "workspace",
            "agent_id",
            "agent",
            "alias",
            "version",
            "valid_from",
            "valid_to",
            "valid_from_source",
            "valid_to_source",
        ],
    )
    _moves = (
        alias_history.groupby(["workspace", "agent_id", "agent", "alias"])
        .size()
        .reset_index(name="intervals")
        .sort_values(
            ["intervals", "workspace", "agent", "alias"],
            ascending=[False, True, True, True],
            ignore_index=True,
        )
    )
    _options = {
        f"{row.agent} · {row.alias} ({row.workspace}, {row.agent_id})": (
            row.workspace,
            row.agent_id,
            row.alias,
        )
        for row in _moves.itertuples()
    }
    alias_choice = mo.ui.dropdown(
        options=_options,
        value=next(iter(_options), None),
        label="agent and alias",
        searchable=True,
    )
    # The night in question, in UTC; now by default.
    night = mo.ui.datetime(
        value=pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
        precision="second",
        label="on (UTC)",
    )
    mo.hstack([alias_choice, night], justify="start")
    return alias_choice, alias_history, night


@app.cell
def _(alias_choice: Any, alias_history: pd.DataFrame):
    _chosen = alias_choice.value or (None, None, None)
    alias_timeline = alias_history[
        (alias_history["workspace"] == _chosen[0])
        & (alias_history["agent_id"] == _chosen[1])
        & (alias_history["alias"] == _chosen[2])
    ].reset_index(drop=True)
    alias_timeline = alias_timeline.assign(
        valid_from=pd.to_datetime(alias_timeline["valid_from"], utc=True),
        valid_to=pd.to_datetime(alias_timeline["valid_to"], utc=True),
        until=pd.to_datetime(alias_timeline["valid_to"], utc=True).fillna(
            pd.Timestamp.now(tz="UTC")
        ),
        held=["open" if pd.isna(until) else "closed" for until in alias_timeline["valid_to"]],
    )
    alias_timeline_chart = (
        alt.Chart(
            alias_timeline,
            title=f"Where {_chosen[2] or 'the alias'} pointed, over time",
        )
        .mark_bar(height=14)
        .encode(
            x=alt.X("valid_from:T", title="UTC"),
            x2="until:T",
            y=alt.Y("version:O", title="version", sort="descending"),
            color=alt.Color("held:N", title=None, scale=alt.Scale(domain=["closed", "open"])),
            tooltip=[
                "version:O",
                alt.Tooltip("valid_from:T", title="from", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("valid_to:T", title="to", format="%Y-%m-%d %H:%M:%S"),
                alt.Tooltip("valid_from_source:N", title="from dated by"),
                alt.Tooltip("valid_to_source:N", title="to dated by"),
            ],
        )
        .properties(width="container")
    )
    alias_timeline_chart
    return alias_timeline, alias_timeline_chart


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## What changed, version by version

    `agent_version_changes` compares each version of an agent with the one before it. For the
    agent chosen above: which kinds of change each version made (the chart), and the changes
    themselves (the table).
    """)
    return


@app.cell
def _(alias_choice: Any, governance: dlt.Dataset, loaded: set[str]):
    _chosen = alias_choice.value or (None, None, None)
    _changes = read(
        governance,
        loaded,
        f"SELECT {', '.join(CHANGE_COLUMNS)} FROM agent_version_changes"
        " ORDER BY workspace, agent_id, version",
        ["agent_version_changes"],
        CHANGE_COLUMNS,
    )
    _mine = _changes[(_changes["workspace"] == _chosen[0]) & (_changes["agent_id"] == _chosen[1])]
    version_changes = pd.DataFrame(
        {
            "version": _mine["version"],
            "previous_version": _mine["previous_version"],
            "changed_at": _mine["changed_at"],
            "kinds": _mine["kinds"],
            "what_changed": [what_changed(row) for row in _mine.itertuples()],
        }
    ).reset_index(drop=True)
    _cells = pd.DataFrame(
        [
            {"version": row.version, "kind": kind, "changed": bool(getattr(row, f"{kind}_changed"))}
            for row in _mine.itertuples()
            for kind in CHANGE_KINDS
        ],
        columns=["version", "kind", "changed"],
    )
    changes_by_version_chart = (
        alt.Chart(_cells, title="Kinds of change by version")
        .mark_rect(stroke="white")
        .encode(
            x=alt.X("version:O", title="version"),
            y=alt.Y("kind:N", sort=CHANGE_KINDS, title=None),
            color=alt.Color("changed:N", title="changed", scale=alt.Scale(domain=[False, True])),
            tooltip=["version:O", "kind:N", "changed:N"],
        )
        .properties(width="container")
    )
    mo.vstack(
        [changes_by_version_chart, mo.ui.table(version_changes, selection=None, page_size=20)]
    )
    return changes_by_version_chart, version_changes


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## On the night in question

    The two questions of `docs/governance.md`, for the agent, alias and night chosen above: what
    the alias pointed at then, and what changed in that version against the one it replaced
    (every version between the two: a move may skip versions, or go back).
    """)
    return


@app.cell
def _(alias_choice: Any, alias_timeline: pd.DataFrame, night: Any, version_changes: pd.DataFrame):
    _at = pd.Timestamp(night.value or pd.Timestamp.now(tz="UTC").to_pydatetime())
    _at = _at.tz_localize("UTC") if _at.tzinfo is None else _at.tz_convert("UTC")
    _held = alias_timeline[
        (alias_timeline["valid_from"] <= _at)
        & (alias_timeline["valid_to"].isna() | (alias_timeline["valid_to"] > _at))
    ]
    pointed_at = None if _held.empty else int(_held["version"].iloc[0])
    replaced = None
    went_live = version_changes.iloc[0:0]
    if pointed_at is not None:
        _before = alias_timeline[alias_timeline["valid_from"] < _held["valid_from"].iloc[0]]
        replaced = None if _before.empty else int(_before["version"].iloc[-1])
        _low, _high = sorted((pointed_at - 1 if replaced is None else replaced, pointed_at))
        went_live = version_changes[
            (version_changes["version"] > _low) & (version_changes["version"] <= _high)
        ].reset_index(drop=True)
    _alias = (alias_choice.value or (None, None, "the alias"))[2]
    if pointed_at is None:
        _answer = f"On {_at:%Y-%m-%d %H:%M} UTC, {_alias} pointed at no version of this agent."
    else:
        _since = _held.iloc[0]
        _answer = (
            f"On {_at:%Y-%m-%d %H:%M} UTC, {_alias} pointed at **version {pointed_at}**, since"
            f" {_since['valid_from']:%Y-%m-%d %H:%M:%S} UTC (dated by"
            f" {'the API' if _since['valid_from_source'] == 'api' else 'the run that saw it'}),"
            " replacing"
            f" {'nothing' if replaced is None else f'version {replaced}'}."
        )
    mo.vstack([mo.md(_answer), mo.ui.table(went_live, selection=None)])
    return pointed_at, replaced, went_live


@app.cell(hide_code=True)
def _():
    mo.md(r"""
    ## Changes per week, by kind

    Versions of live agents by the week they were created (weeks start on Monday, UTC), counted
    under each kind of change they made: a new model, tools added, removed or redefined,
    instructions edited, and the rest.
    """)
    return


@app.cell
def _(governance: dlt.Dataset, loaded: set[str]):
    _columns = ["changed_at", *(f"{kind}_changed" for kind in CHANGE_KINDS)]
    _live_changes = read(
        governance,
        loaded,
        f"SELECT {', '.join(f'c.{name}' for name in _columns)} FROM agent_version_changes AS c"
        " JOIN agents AS a ON c.workspace = a.workspace AND c.agent_id = a.id"
        " WHERE a.deleted_at IS NULL",
        ["agents", "agent_version_changes"],
        _columns,
    )
    weekly_changes = changes_per_week(_live_changes)
    weekly_changes_chart = (
        alt.Chart(weekly_changes, title="Changes per week by kind")
        .mark_bar(stroke="white")
        .encode(
            x=alt.X("week_start:T", title="week (UTC)"),
            x2="week_end:T",
            y=alt.Y("sum(changes):Q", title="versions", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("kind:N", title="kind", scale=alt.Scale(domain=CHANGE_KINDS)),
            tooltip=[
                alt.Tooltip("week_start:T", title="week from"),
                "kind:N",
                "changes:Q",
            ],
        )
        .properties(width="container")
    )
    weekly_changes_chart
    return weekly_changes, weekly_changes_chart


if __name__ == "__main__":
    app.run()
