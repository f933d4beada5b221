import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Mistral agents in the warehouse")

with app.setup:
    # What the warehouse holds, pictured for the people who govern it. Reads only, through dlt's
    # `pipeline.dataset()`, on the pipeline `chat-agents-load` and the Dagster job load into, so the
    # same settings (DESTINATION_TYPE, DESTINATION__DUCKDB__CREDENTIALS, ...) pick the warehouse.
    # Run from the repository root: `marimo edit notebooks/agents.py` (or `marimo run`).
    from collections.abc import Iterable

    import altair as alt
    import dlt
    import marimo as mo
    import pandas as pd
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    from chat_agents_dagster.source import DEFAULT_DUCKDB_FILE, make_pipeline

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
    loaded = set(dataset.tables)
    return dataset, loaded, pipeline


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


if __name__ == "__main__":
    app.run()
