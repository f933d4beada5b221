"""Benchmark the naive rest_api pipeline against ours, through Dagster and through
`chat-agents-load`, on the same sandbox world in the same run.

Every pipeline run is a subprocess (so its wall time includes start-up, as users see it, and its
peak memory is its own). Requests are counted by the sandbox. See benchmarks/README.md.
"""

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World

REPO = Path(__file__).resolve().parent.parent
NAIVE_SCRIPT = Path(__file__).resolve().parent / "naive_pipeline.py"
API_KEY = "bench-key"
DATASET = "chat_agents_data"
TABLES = ("agents", "agent_detail", "agent_versions", "agent_aliases", "agent_version_detail")
WORKERS_ENV = "SOURCES__CHAT_AGENTS_SOURCE__EXTRACT__WORKERS"
# Ours exactly as users run it: the nightly job through Dagster (one run, in a fresh process that
# loads the code location, on an instance with the repository's dagster.yaml), and the CLI.
DAGSTER, CLI = "dagster", "chat-agents-load"
OURS = (DAGSTER, CLI)
COMMANDS = {
    "naive": [sys.executable, str(NAIVE_SCRIPT)],
    DAGSTER: [
        *(sys.executable, "-m", "dagster", "job", "execute"),
        *("-m", "chat_agents_dagster.definitions", "-j", "chat_agents_job"),
    ],
    CLI: [sys.executable, "-m", "chat_agents_dagster.source", "--json"],
}
# The same job shape doing no work: what Dagster itself costs per run (benchmarks/dagster_shape.py).
DAGSTER_SHAPE = [
    *(sys.executable, "-m", "dagster", "job", "execute"),
    *("-f", str(Path(__file__).resolve().parent / "dagster_shape.py"), "-j", "chat_agents_job"),
]
# An interpreter start that imports what each command imports before its first request: the
# part of the floor no run can avoid.
STARTS = {
    DAGSTER: [sys.executable, "-c", "import chat_agents_dagster.definitions"],
    CLI: [sys.executable, "-c", "import chat_agents_dagster.source.__main__"],
}
# Settings in the caller's shell would silently change what is measured: children get none.
_INHERITED_SETTINGS: tuple[str, ...] = ("SOURCES__", "DESTINATION", "EXTRACT__", "NORMALIZE__")
_INHERITED_SETTINGS += ("LOAD__", "RUNTIME__", "DLT_", "MISTRAL_API_KEY", "DAGSTER_")
_INHERITED_SETTINGS += ("CHAT_AGENTS_",)


@dataclass
class Lane:
    """One pipeline's working files: DuckDB file, DLT_DATA_DIR (kept between runs, so incremental
    state persists) and the working directory it runs in."""

    pipeline: str  # "naive", DAGSTER or CLI
    root: Path

    def __post_init__(self) -> None:
        (self.root / "cwd").mkdir(parents=True, exist_ok=True)
        if self.pipeline == DAGSTER:
            # Runs, events and materializations are written as a deployment writes them.
            self.dagster_home.mkdir(exist_ok=True)
            shutil.copyfile(REPO / "dagster.yaml", self.dagster_home / "dagster.yaml")

    @property
    def db(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"


@dataclass
class Run:
    pipeline: str
    ok: bool
    wall_s: float
    requests: int  # counted by the sandbox
    request_window_s: float  # the sandbox's first to last request of the run
    status_429: int
    peak_mib: float
    rows: dict[str, int]  # live rows in the destination after the run
    truth: dict[str, int]  # what the world holds
    by_route: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)  # the JSON the child printed
    error: str | None = None
    steps: dict[str, float] = field(default_factory=dict)  # a Dagster run's steps, wall s

    @property
    def reported_requests(self) -> int | None:
        """Ours' own request count, retries included."""
        total: int | None = self.summary.get("requests", {}).get("total")
        return total

    @property
    def rows_ok(self) -> bool:
        return self.rows == self.truth


def configured_workers() -> int:
    """The extract pool size the repo's config gives ours (dlt's default is 5)."""
    path = REPO / ".dlt" / "config.toml"
    config = tomllib.loads(path.read_text()) if path.exists() else {}
    source = config.get("sources", {}).get("chat_agents_source", {}).get("extract", {})
    return int(source.get("workers", config.get("extract", {}).get("workers", 5)))


def world_truth(world: World) -> dict[str, int]:
    agents = world.agents()
    versions = sum(len(a["versions"]) for a in agents)
    aliases = sum(len(world.aliases(a["id"])) for a in agents)
    return dict(zip(TABLES, (len(agents), len(agents), versions, aliases, versions), strict=True))


def live_rows(db: Path) -> dict[str, int]:
    """Rows per table; where a table has `deleted_at` (ours keeps deleted rows, marked), only
    the rows not marked deleted."""
    rows = dict.fromkeys(TABLES, 0)
    if not db.exists():
        return rows
    with duckdb.connect(str(db), read_only=True) as con:
        for table in TABLES:
            columns = {
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = ? AND table_name = ?",
                    [DATASET, table],
                ).fetchall()
            }
            if columns:
                where = " WHERE deleted_at IS NULL" if "deleted_at" in columns else ""
                query = f'SELECT COUNT(*) FROM "{DATASET}"."{table}"{where}'
                rows[table] = int(con.execute(query).fetchall()[0][0])
    return rows


def child_env(lane: Lane, base_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_SETTINGS)}
    env |= {
        "SOURCES__CHAT_AGENTS_SOURCE__BASE_URL": base_url,
        "SOURCES__CHAT_AGENTS_SOURCE__API_KEY": API_KEY,
        "DESTINATION__DUCKDB__CREDENTIALS": str(lane.db),
        "DLT_DATA_DIR": str(lane.root / "dlt"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    if lane.pipeline in OURS:
        env["DLT_PROJECT_DIR"] = str(REPO)  # the repo's .dlt/config.toml defaults
    if lane.pipeline == DAGSTER:
        env["DAGSTER_HOME"] = str(lane.dagster_home)
    return env | extra


def spawn(
    cmd: list[str], env: dict[str, str], lane: Lane, timeout_s: float
) -> tuple[int, float, int]:
    """Run to completion; (exit code, wall seconds, peak RSS in KiB). wait4 gives the rusage of
    exactly this child, which RUSAGE_CHILDREN deltas cannot for sequential children."""
    with (lane.root / "stdout").open("wb") as out, (lane.root / "stderr").open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=lane.root / "cwd", stdout=out, stderr=err)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait
    return proc.returncode, wall, usage.ru_maxrss


def spawn_together(
    jobs: list[tuple[list[str], dict[str, str], Lane]], timeout_s: float
) -> list[tuple[int, float, int]]:
    """Start every job at once and wait for all; per job (exit code, wall seconds from the common
    start, peak RSS in KiB), as `spawn` gives for one."""
    started = time.perf_counter()
    procs = []
    for cmd, env, lane in jobs:
        out = (lane.root / "stdout").open("wb")
        err = (lane.root / "stderr").open("wb")
        procs.append(
            (
                subprocess.Popen(cmd, env=env, cwd=lane.root / "cwd", stdout=out, stderr=err),
                out,
                err,
            )
        )
    timers = [threading.Timer(timeout_s, proc.kill) for proc, _, _ in procs]
    for timer in timers:
        timer.start()
    outcomes: dict[int, tuple[int, float, int]] = {}
    try:
        while len(outcomes) < len(procs):
            pid, status, usage = os.wait4(-1, 0)
            for proc, _, _ in procs:
                if proc.pid == pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    outcomes[pid] = (
                        proc.returncode,
                        time.perf_counter() - started,
                        usage.ru_maxrss,
                    )
    finally:
        for timer in timers:
            timer.cancel()
        for _, out, err in procs:
            out.close()
            err.close()
    return [outcomes[proc.pid] for proc, _, _ in procs]


def dagster_steps(dagster_home: Path) -> dict[str, float]:
    """The latest run's steps and their wall time, as the lane's instance recorded them."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(limit=1)
        if not records:
            return {}
        return {
            stats.step_key: round((stats.end_time or 0) - (stats.start_time or 0), 2)
            for stats in instance.get_run_step_stats(records[0].dagster_run.run_id)
        }


def run_pipeline(
    lane: Lane,
    server: SandboxServer,
    args: argparse.Namespace,
    extra_env: dict[str, str],
    command: list[str] | None = None,
    truth: dict[str, int] | None = None,
) -> Run:
    env = child_env(lane, server.base_url, extra_env)
    server.stats.reset()
    code, wall, peak_kib = spawn(command or COMMANDS[lane.pipeline], env, lane, args.timeout)
    stats = server.stats.snapshot()
    summary: dict[str, Any] = {}
    for line in (lane.root / "stdout").read_text().splitlines():
        if line.startswith("{"):  # log lines may reach stdout too; the JSON lines are objects
            with contextlib.suppress(ValueError):
                summary |= json.loads(line)
    # The naive script's own figure (it is the same measure: that process's peak).
    peak_kib = int(summary.pop("ru_maxrss_kib", peak_kib))
    error = None
    if code != 0:
        tail = (lane.root / "stderr").read_text(errors="replace").strip().splitlines()[-5:]
        error = f"exit {code}: " + " | ".join(tail)
    return Run(
        pipeline=lane.pipeline,
        ok=code == 0,
        wall_s=round(wall, 2),
        requests=stats["total"],
        request_window_s=stats["window_s"],
        status_429=server.stats.count_status(429),
        peak_mib=round(peak_kib / 1024, 1),
        rows=live_rows(lane.db),
        truth=truth or world_truth(server.world),
        by_route=stats["by_route"],
        summary=summary,
        error=error,
        steps=dagster_steps(lane.dagster_home) if lane.pipeline == DAGSTER else {},
    )


# Scenario 6's workspaces: the default one and ws1, ws2, ... each with a key of its own.
def workspace_names(count: int) -> list[str]:
    return ["default", *(f"ws{n}" for n in range(1, count))]


def workspace_env(names: list[str]) -> dict[str, str]:
    """The code location configured for `names`, as a user configures it."""
    env = {"CHAT_AGENTS_WORKSPACES": ",".join(names)}
    for name in names[1:]:
        env[f"SOURCES__CHAT_AGENTS_SOURCE__WORKSPACES__{name.upper()}__API_KEY"] = (
            f"{API_KEY}-{name}"
        )
    return env


def partition_command(name: str) -> list[str]:
    """One run of chat_agents_job for a workspace's partition, as the schedule asks for it."""
    return [*COMMANDS[DAGSTER], "--tags", json.dumps({"dagster/partition": name})]


def total(runs: list[Run], label: str, wall_s: float) -> Run:
    """Several runs as one: their requests summed, the peak of their peaks, the rows and truth
    of the last (which holds every workspace)."""
    last = runs[-1]
    return Run(
        pipeline=label,
        ok=all(run.ok for run in runs),
        wall_s=round(wall_s, 2),
        requests=sum(run.requests for run in runs),
        request_window_s=sum(run.request_window_s for run in runs),
        status_429=sum(run.status_429 for run in runs),
        peak_mib=max(run.peak_mib for run in runs),
        rows=last.rows,
        truth=last.truth,
        error="; ".join(run.error for run in runs if run.error) or None,
    )


def postgres_rows(url: str) -> dict[str, int]:
    import psycopg2  # only scenario 6 with --ws-postgres-url needs it

    rows = dict.fromkeys(TABLES, 0)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f'SELECT COUNT(*) FROM "{DATASET}"."{table}" WHERE deleted_at IS NULL')
            rows[table] = int(cursor.fetchone()[0])
    return rows


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A new, empty database on the server at `url` (its role needs CREATEDB), dropped after."""
    import psycopg2

    name = f"chat_agents_bench_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def mutate(world: World, args: argparse.Namespace) -> dict[str, int]:
    """A typical night: new agents, updates (each a new version), alias moves and deletions,
    deleted agents. Shares are of the agent count; picks are seeded and disjoint from the
    deleted agents so that every mutation stays visible."""
    rng = random.Random(f"{args.seed}:night")
    ids = [a["id"] for a in world.agents()]
    n = len(ids)
    rng.shuffle(ids)
    doomed, kept = ids[: round(n * args.delete_share)], ids[round(n * args.delete_share) :]
    for i in range(round(n * args.new_share)):
        world.create_agent(name=f"Night agent {i}", model="mistral-medium-latest")
    for agent_id in rng.sample(kept, min(len(kept), round(n * args.update_share))):
        world.update_agent(agent_id, instructions=f"Revised at night ({rng.random():.6f}).")
    aliased = [(a, alias) for a in kept for alias in world.aliases(a)]
    moved = rng.sample(aliased, min(len(aliased), round(n * args.alias_move_share)))
    for agent_id, alias in moved:
        others = [v for v in range(len(world.versions(agent_id))) if v != alias["version"]]
        world.set_alias(agent_id, alias["alias"], rng.choice(others or [alias["version"]]))
    rest = [pair for pair in aliased if pair not in moved]
    dropped = rng.sample(rest, min(len(rest), round(n * args.alias_delete_share)))
    for agent_id, alias in dropped:
        world.delete_alias(agent_id, alias["alias"])
    for agent_id in doomed:
        world.delete_agent(agent_id)
    return {
        "created": round(n * args.new_share),
        "updated": min(len(kept), round(n * args.update_share)),
        "aliases_moved": len(moved),
        "aliases_deleted": len(dropped),
        "deleted": len(doomed),
    }


@contextmanager
def sandbox(
    agents: int, args: argparse.Namespace, latency_ms: float, rps: float | None = None
) -> Iterator[SandboxServer]:
    world = World.generate(
        agents=agents, seed=args.seed, min_versions=args.versions, max_versions=args.versions
    )
    config = SandboxConfig(api_key=API_KEY, latency_s=latency_ms / 1000, rps_limit=rps)
    with SandboxServer(world, config, port=0) as server:
        yield server


def ratio(a: float, b: float, *runs: Run) -> float | None:
    """a / b, or None when b is 0 or one of `runs` failed (a crashed run's figures mean nothing)."""
    return None if b == 0 or not all(r.ok for r in runs) else round(a / b, 2)


def fmt(value: float | None, suffix: str = "x") -> str:
    return "n/a" if value is None else f"{value:g}{suffix}"


@dataclass
class Scenario:
    key: str
    title: str
    runs: list[tuple[str, Run]]
    figures: dict[str, Any]
    notes: list[str]
    crash_if_failed: bool = True  # not under the rate limit, where failing is what is measured


def report(scenario: Scenario) -> None:
    print(f"\n{scenario.title}")
    print(
        f"  {'pipeline':<22}{'wall s':>9}{'requests':>10}{'429s':>7}{'peak MiB':>10}  "
        "rows agents/detail/versions/aliases/version_detail"
    )
    for label, run in scenario.runs:
        rows = "/".join(str(run.rows[t]) for t in TABLES)
        print(
            f"  {label:<22}{run.wall_s:>9.1f}{run.requests:>10}{run.status_429:>7}"
            f"{run.peak_mib:>10.1f}  {rows} (total {sum(run.rows.values())},"
            f" {'ok' if run.rows_ok else 'MISMATCH'})"
        )
    for label, run in scenario.runs:
        if not run.ok:
            print(f"  ! {label} FAILED: {run.error}")
        if not run.rows_ok:
            diff = {
                t: f"{run.rows[t]} vs {run.truth[t]}" for t in TABLES if run.rows[t] != run.truth[t]
            }
            print(f"  ! {label} rows differ from the world (loaded vs truth): {diff}")
        if run.reported_requests is not None and run.reported_requests != run.requests:
            print(
                f"  ! {label} counted {run.reported_requests} requests, the sandbox {run.requests}"
            )
        # Ours says what it fetched (naive fetches everything every time).
        fetched = run.summary.get("requests", {}).get("api_rows") or run.summary.get("api_rows")
        if fetched:
            print(f"  {label} fetched {sum(fetched.values())} rows this run: {fetched}")
        if run.steps:
            steps = ", ".join(f"{step} {wall:g}" for step, wall in run.steps.items())
            print(f"  {label} steps, wall s: {steps}")
    for note in scenario.notes:
        print(f"  {note}")


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (an odd count gives a real run, with its own figures)."""
    ranked = sorted(runs, key=lambda run: run.wall_s)
    return ranked[(len(ranked) - 1) // 2]


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    workers: int  # in effect for ours
    ours_env: dict[str, str]  # --workers and --executor, empty unless given
    starts: dict[str, float] = field(default_factory=dict)  # interpreter start per lane, s

    def run(self, lane: Lane, server: SandboxServer, extra: dict[str, str] | None = None) -> Run:
        if lane.pipeline == "naive":
            return run_pipeline(lane, server, self.args, {})
        return run_pipeline(lane, server, self.args, self.ours_env | (extra or {}))

    def measure_starts(self, base_url: str) -> None:
        """Median of three interpreter starts importing what each lane's command imports, in
        the environment that lane runs in."""
        for name, cmd in STARTS.items():
            lane = Lane(name, self.root / "starts" / name)
            env = child_env(lane, base_url, self.ours_env)
            walls = [spawn(cmd, env, lane, self.args.timeout)[1] for _ in range(3)]
            self.starts[name] = round(statistics.median(walls), 2)

    def dagster_own_cost(self, base_url: str) -> float:
        """Median wall of three runs of the job's shape doing no work, less the Dagster lane's
        interpreter start: run creation, Dagster's events and the exit, per run."""
        lane = Lane(DAGSTER, self.root / "dagster-shape")
        env = child_env(lane, base_url, self.ours_env)
        walls = [spawn(DAGSTER_SHAPE, env, lane, self.args.timeout)[1] for _ in range(3)]
        return round(statistics.median(walls) - self.starts[DAGSTER], 2)

    def floor(self, lane: str, run: Run) -> float:
        """requests x latency / workers, plus one interpreter start importing the lane's code."""
        return run.requests * self.args.latency_ms / 1000 / self.workers + self.starts[lane]

    def loads(self, chosen: set[int]) -> Iterator[Scenario]:
        """Scenarios 1-3 on one world. 2 and 3 re-run on top of 1, so 1 runs whenever they do."""
        args, latency_s = self.args, self.args.latency_ms / 1000
        lanes = {name: Lane(name, self.root / name) for name in ("naive", *OURS)}
        size = f"{args.agents} agents x {args.versions} versions, {args.latency_ms:g} ms"
        with sandbox(args.agents, args, args.latency_ms) as server:
            self.measure_starts(server.base_url)
            n = self.run(lanes["naive"], server)
            full = {name: self.run(lanes[name], server) for name in OURS}
            figures: dict[str, Any] = {"interpreter_start_s": dict(self.starts)}
            notes = []
            for name, run in full.items():
                bound = run.requests * latency_s / self.workers
                figures[name] = {
                    "naive_over_ours_time": ratio(n.wall_s, run.wall_s, n, run),
                    "bound_s": round(bound, 2),
                    "floor_s": round(self.floor(name, run), 2),
                    "over_floor": ratio(run.wall_s, self.floor(name, run), run),
                    "request_phase_s": run.request_window_s,
                    "request_phase_over_bound": ratio(run.request_window_s, bound, run),
                }
                f = figures[name]
                notes.append(
                    f"{name}: naive/ours time {fmt(f['naive_over_ours_time'])}; floor"
                    f" {run.requests} x {latency_s:g} / {self.workers} + {self.starts[name]:g} s"
                    f" start = {f['floor_s']:g} s, run/floor {fmt(f['over_floor'])}; request"
                    f" phase {run.request_window_s:g} s, {fmt(f['request_phase_over_bound'])}"
                    f" of requests x latency / workers ({bound:.2f} s)"
                )
            yield Scenario(
                "1_full_load",
                f"Scenario 1: full load, all empty ({size})",
                [("naive", n), *full.items()],
                figures,
                notes,
            )
            for number, key, title in (
                (2, "2_rerun_unchanged", "Scenario 2: re-run, nothing changed"),
                (3, "3_rerun_after_night", "Scenario 3: re-run after a typical night"),
            ):
                if number not in chosen:
                    continue
                night = mutate(server.world, args) if number == 3 else {}
                n = self.run(lanes["naive"], server)
                # A short run is timed several times (the world is unchanged between them).
                repeats = args.repeats if number == 2 else 1
                runs: list[tuple[str, Run]] = [("naive (reload)", n)]
                figures, notes = {"mutations": night}, []
                for name in OURS:
                    tries = [self.run(lanes[name], server) for _ in range(repeats)]
                    runs += [
                        (name if repeats == 1 else f"{name} #{i + 1}", r)
                        for i, r in enumerate(tries)
                    ]
                    o = median_run(tries)
                    figures[name] = {
                        "wall_s": o.wall_s,
                        "naive_over_ours_time": ratio(n.wall_s, o.wall_s, n, *tries),
                        "floor_s": round(self.floor(name, o), 2),
                        "over_floor": ratio(o.wall_s, self.floor(name, o), *tries),
                        "requests_pct_of_full": ratio(100 * o.requests, full[name].requests, o),
                    }
                    f = figures[name]
                    if name == DAGSTER and number == 2:
                        own = self.dagster_own_cost(server.base_url)
                        f["dagster_own_s"] = own
                        f["over_floor_and_dagster_own"] = ratio(
                            o.wall_s, self.floor(name, o) + own, *tries
                        )
                        notes.append(
                            f"dagster's own cost per run (the job's shape doing no work,"
                            f" dagster_shape.py, median of 3, less the start): {own:g} s;"
                            f" run / (floor + that) {fmt(f['over_floor_and_dagster_own'])}"
                        )
                    median = f"median of {repeats}, " if repeats > 1 else ""
                    notes.append(
                        f"{name} ({median}{o.wall_s:g} s): naive/ours time"
                        f" {fmt(f['naive_over_ours_time'])}; run/floor {fmt(f['over_floor'])}"
                        f" (floor {f['floor_s']:g} s); requests"
                        f" {fmt(f['requests_pct_of_full'], '%')} of its full load"
                        f" ({full[name].requests})"
                    )
                yield Scenario(
                    key,
                    f"{title} ({size}){': ' + json.dumps(night) if night else ''}",
                    runs,
                    figures,
                    notes,
                )

    def rate_limit(self) -> Iterator[Scenario]:
        args = self.args
        pacing = {"SOURCES__CHAT_AGENTS_SOURCE__REQUESTS_PER_SECOND": f"{args.rps_limit:g}"}
        with sandbox(args.rl_agents, args, args.latency_ms, args.rps_limit) as server:
            runs = [("naive", self.run(Lane("naive", self.root / "rl-naive"), server))]
            for name in OURS:
                runs.append((name, self.run(Lane(name, self.root / f"rl-{name}"), server, pacing)))
        figures: dict[str, Any] = {
            f"{label}_429_share_pct": ratio(100 * r.status_429, r.requests) for label, r in runs
        }
        figures["failed_runs"] = {label: int(not r.ok) for label, r in runs}
        shares = ", ".join(
            f"{label} {fmt(figures[f'{label}_429_share_pct'], '%')}" for label, _ in runs
        )
        yield Scenario(
            "4_rate_limit",
            f"Scenario 4: full load of a fresh, smaller world under {args.rps_limit:g}"
            f" requests/s ({args.rl_agents} agents x {args.versions} versions,"
            f" {args.latency_ms:g} ms; --rl-agents to change)",
            runs,
            figures,
            [f"429 share: {shares}; failed runs: {figures['failed_runs']}"],
            crash_if_failed=False,
        )

    def memory(self) -> Iterator[Scenario]:
        runs: list[tuple[str, Run]] = []
        figures: dict[str, Any] = {}
        small, large = self.args.mem_agents
        for name in OURS:
            peaks = []
            for agents in (small, large):
                with sandbox(agents, self.args, self.args.mem_latency_ms) as server:
                    run = self.run(Lane(name, self.root / f"mem-{name}-{agents}"), server)
                runs.append((f"{name} {agents}", run))
                peaks.append(run)
            figures[name] = {"memory_ratio": ratio(peaks[1].peak_mib, peaks[0].peak_mib, *peaks)}
        yield Scenario(
            "5_memory",
            f"Scenario 5: ours' full load, peak RSS ({self.args.versions} versions per agent,"
            f" {self.args.mem_latency_ms:g} ms)",
            runs,
            figures,
            [
                f"{name}: memory ratio {large}/{small}: {fmt(figures[name]['memory_ratio'])}"
                for name in OURS
            ],
        )

    def workspaces(self) -> Iterator[Scenario]:
        """N workspaces of A agents, one Dagster run per partition, against one workspace of
        N x A agents in one run: what partitioning by workspace costs, one after another on
        DuckDB (the instance's pool of one); and on PostgreSQL, where given, the N runs one after
        another against all at once."""
        args, count, agents = self.args, self.args.ws_count, self.args.ws_agents
        names = workspace_names(count)
        runs: list[tuple[str, Run]] = []
        with sandbox(count * agents, args, args.ws_latency_ms) as server:
            one = self.run(Lane(DAGSTER, self.root / "ws-one"), server)
        runs.append((f"1 ws x {count * agents}", one))

        def worlds(server: SandboxServer) -> list[World]:
            extra = []
            for n, name in enumerate(names[1:], start=1):
                world = World.generate(
                    agents=agents,
                    seed=args.seed + n,
                    min_versions=args.versions,
                    max_versions=args.versions,
                )
                server.add_workspace(f"{API_KEY}-{name}", world)
                extra.append(world)
            return [server.world, *extra]

        def truth_of(loaded: list[World]) -> dict[str, int]:
            return {t: sum(world_truth(w)[t] for w in loaded) for t in TABLES}

        env = self.ours_env | workspace_env(names)
        with sandbox(agents, args, args.ws_latency_ms) as server:
            every = worlds(server)
            lane = Lane(DAGSTER, self.root / "ws-serial")
            parts = [
                run_pipeline(
                    lane, server, args, env, partition_command(name), truth_of(every[: n + 1])
                )
                for n, name in enumerate(names)
            ]
        serial = total(parts, f"{count} workspaces, serial", sum(p.wall_s for p in parts))
        runs.append((f"{count} ws x {agents} serial", serial))
        figures: dict[str, Any] = {
            "workspaces": count,
            "agents_per_workspace": agents,
            "serial_duckdb_time_ratio": ratio(serial.wall_s, one.wall_s, serial, one),
            "serial_duckdb_requests_ratio": ratio(serial.requests, one.requests, serial, one),
        }
        notes = [
            f"{count} workspaces serial on DuckDB against one of {count * agents} agents: time"
            f" {fmt(figures['serial_duckdb_time_ratio'])},"
            f" requests {fmt(figures['serial_duckdb_requests_ratio'])}"
        ]
        if args.ws_postgres_url:
            pg_serial, pg_parallel = self.workspaces_on_postgres(names, worlds, truth_of, env)
            runs += [
                (f"{count} ws x {agents} serial pg", pg_serial),
                (f"{count} ws x {agents} parallel pg", pg_parallel),
            ]
            figures["parallel_postgres_speedup"] = ratio(
                pg_serial.wall_s, pg_parallel.wall_s, pg_serial, pg_parallel
            )
            notes.append(
                f"PostgreSQL: {count} partitions at once against one after another:"
                f" {fmt(figures['parallel_postgres_speedup'])} faster"
            )
        yield Scenario(
            "6_workspaces",
            f"Scenario 6: {count} workspaces of {agents} agents through Dagster, a run per"
            f" partition ({args.versions} versions per agent, {args.ws_latency_ms:g} ms)",
            runs,
            figures,
            notes,
        )

    def workspaces_on_postgres(
        self,
        names: list[str],
        worlds: Callable[[SandboxServer], list[World]],
        truth_of: Callable[[list[World]], dict[str, int]],
        env: dict[str, str],
    ) -> tuple[Run, Run]:
        """(one after another, all at once): each into a new database, each run in its own
        process with its own Dagster instance, as run workers are."""
        args = self.args
        results = []
        for mode in ("serial", "parallel"):
            with (
                sandbox(args.ws_agents, args, args.ws_latency_ms) as server,
                postgres_database(args.ws_postgres_url) as url,
            ):
                every = worlds(server)
                pg = env | {
                    "DESTINATION_TYPE": "postgres",
                    "DESTINATION__POSTGRES__CREDENTIALS": url,
                }
                lanes = [Lane(DAGSTER, self.root / f"ws-pg-{mode}-{name}") for name in names]
                server.stats.reset()
                started = time.perf_counter()
                if mode == "serial":
                    outcomes = [
                        spawn(
                            partition_command(name),
                            child_env(lane, server.base_url, pg),
                            lane,
                            args.timeout,
                        )
                        for name, lane in zip(names, lanes, strict=True)
                    ]
                else:
                    outcomes = spawn_together(
                        [
                            (partition_command(name), child_env(lane, server.base_url, pg), lane)
                            for name, lane in zip(names, lanes, strict=True)
                        ],
                        args.timeout,
                    )
                wall = time.perf_counter() - started
                stats = server.stats.snapshot()
                failed = [
                    f"{name}: exit {code}"
                    for name, (code, _, _) in zip(names, outcomes, strict=True)
                    if code != 0
                ]
                results.append(
                    Run(
                        pipeline=f"{DAGSTER} {mode} PostgreSQL",
                        ok=not failed,
                        wall_s=round(wall, 2),
                        requests=stats["total"],
                        request_window_s=stats["window_s"],
                        status_429=server.stats.count_status(429),
                        peak_mib=round(max(peak for _, _, peak in outcomes) / 1024, 1),
                        rows=postgres_rows(url),
                        truth=truth_of(every),
                        by_route=stats["by_route"],
                        error="; ".join(failed) or None,
                    )
                )
        return results[0], results[1]


def targets(results: dict[str, Any]) -> list[dict[str, str]]:
    """PASS/FAIL per target (a missing figure fails), SKIP when its scenario did not run."""

    def check(
        target: str, key: str, measure: Callable[[dict[str, Any]], tuple[bool, str]]
    ) -> dict[str, str]:
        if key not in results:
            return {"target": target, "verdict": "SKIP", "measured": "not run"}
        passed, measured = measure(results[key]["figures"])
        return {"target": target, "verdict": "PASS" if passed else "FAIL", "measured": measured}

    def within(value: float | None, low: float = float("-inf"), high: float = float("inf")) -> bool:
        return value is not None and low <= value <= high

    def at_least(lane: str, name: str, low: float) -> Callable[[dict[str, Any]], tuple[bool, str]]:
        return lambda f: (within(f[lane][name], low=low), fmt(f[lane][name]))

    def at_most(lane: str, name: str, high: float) -> Callable[[dict[str, Any]], tuple[bool, str]]:
        return lambda f: (within(f[lane][name], high=high), fmt(f[lane][name]))

    def rerun_requests(lane: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
        return lambda f: (
            within(f[lane]["requests_pct_of_full"], high=15),
            fmt(f[lane]["requests_pct_of_full"], "%"),
        )

    def rate_limit(lane: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
        def measure(f: dict[str, Any]) -> tuple[bool, str]:
            share, failed = f[f"{lane}_429_share_pct"], f["failed_runs"][lane]
            return failed == 0 and within(share, high=5), f"{failed} failed, {fmt(share, '%')} 429s"

        return measure

    full, unchanged = "1_full_load", "2_rerun_unchanged"
    verdicts = []
    for lane in OURS:
        verdicts += [
            check(
                f"{lane}: full load >= 10x faster than naive",
                full,
                at_least(lane, "naive_over_ours_time", 10),
            ),
            check(
                f"{lane}: full load within 2x of its floor", full, at_most(lane, "over_floor", 2)
            ),
            check(
                f"{lane}: full load's request phase within 1.5x of requests x latency / workers",
                full,
                at_most(lane, "request_phase_over_bound", 1.5),
            ),
            check(
                f"{lane}: unchanged re-run >= 20x faster than naive",
                unchanged,
                at_least(lane, "naive_over_ours_time", 20),
            ),
            check(
                f"{lane}: unchanged re-run within 2x of its floor",
                unchanged,
                at_most(lane, "over_floor", 2),
            ),
            check(
                f"{lane}: unchanged re-run <= 15% of its full load's requests",
                unchanged,
                rerun_requests(lane),
            ),
            check(
                f"{lane}: under the rps limit, no failed run and 429s < 5% of requests",
                "4_rate_limit",
                rate_limit(lane),
            ),
            check(
                f"{lane}: peak memory at large <= 1.3x that at small",
                "5_memory",
                at_most(lane, "memory_ratio", 1.3),
            ),
        ]
    return verdicts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--scenarios", default="1,2,3,4,5,6", help="comma-separated subset of 1-6")
    p.add_argument("--agents", type=int, default=300, help="world size of scenarios 1-3")
    p.add_argument("--versions", type=int, default=5, help="versions per agent, every world")
    p.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency, scenarios 1-4")
    p.add_argument("--seed", type=int, default=0, help="world generation and mutation seed")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"ours' extract pool ({WORKERS_ENV}); None: what the repo config gives",
    )
    p.add_argument(
        "--executor",
        choices=("in_process", "multiprocess"),
        default=None,
        help="the Dagster lane's CHAT_AGENTS_EXECUTOR; None: the code location's default",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="scenario 2: runs of each of ours, median taken"
    )
    p.add_argument(
        "--new-share", type=float, default=0.02, help="scenario 3: new agents, share of agents"
    )
    p.add_argument(
        "--update-share", type=float, default=0.10, help="scenario 3: agents updated (new version)"
    )
    p.add_argument(
        "--alias-move-share", type=float, default=0.05, help="scenario 3: aliases re-pointed"
    )
    p.add_argument(
        "--alias-delete-share", type=float, default=0.01, help="scenario 3: aliases deleted"
    )
    p.add_argument("--delete-share", type=float, default=0.01, help="scenario 3: agents deleted")
    p.add_argument("--rps-limit", type=float, default=10.0, help="sandbox limit in scenario 4")
    p.add_argument("--rl-agents", type=int, default=100, help="world size of scenario 4")
    p.add_argument(
        "--mem-agents",
        type=int,
        nargs=2,
        default=[300, 3000],
        metavar=("SMALL", "LARGE"),
        help="scenario 5: the two world sizes",
    )
    p.add_argument("--mem-latency-ms", type=float, default=5.0, help="sandbox latency, scenario 5")
    p.add_argument("--ws-count", type=int, default=3, help="scenario 6: workspaces")
    p.add_argument("--ws-agents", type=int, default=100, help="scenario 6: agents per workspace")
    p.add_argument("--ws-latency-ms", type=float, default=20.0, help="sandbox latency, scenario 6")
    p.add_argument(
        "--ws-postgres-url",
        default=None,
        help="scenario 6: a PostgreSQL server whose role may CREATEDB, for the serial and parallel"
        " runs there (e.g. postgresql://chat_agents:chat_agents@127.0.0.1:5432/chat_agents);"
        " None: DuckDB only",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before a run is killed")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="an empty or new directory to keep DuckDB files and logs in; None: a temp dir",
    )
    p.add_argument("--json-out", type=Path, default=None, help="write all figures as JSON here")
    args = p.parse_args(argv)
    # Tables appear as each scenario ends, also when stdout is a pipe or a log file.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.workdir and args.workdir.exists() and any(args.workdir.iterdir()):
        # Leftover DuckDB files and dlt state would make the "full load from empty" a re-run.
        p.error(f"--workdir {args.workdir} is not empty")
    chosen = {int(s) for s in args.scenarios.split(",") if s.strip()}
    workers = args.workers or configured_workers()
    ours_env = {WORKERS_ENV: str(args.workers)} if args.workers else {}
    if args.executor:
        ours_env["CHAT_AGENTS_EXECUTOR"] = args.executor
    results: dict[str, Any] = {"settings": vars(args) | {"workers_in_effect": workers}}
    crashed = False

    with tempfile.TemporaryDirectory(prefix="chat-agents-bench-") as tmp:
        root = args.workdir or Path(tmp)
        bench = Bench(args, root, workers, ours_env)
        for name in OURS:
            print(f"Ours, {name}: {' '.join(COMMANDS[name][1:])}")
        print(
            f"{workers} extract workers ({'--workers' if args.workers else 'repo config'}),"
            f" executor {args.executor or 'the code location default'}; work dir {root}"
        )
        scenarios = itertools.chain(
            bench.loads(chosen) if chosen & {1, 2, 3} else (),
            bench.rate_limit() if 4 in chosen else (),
            bench.memory() if 5 in chosen else (),
            bench.workspaces() if 6 in chosen else (),
        )
        for scenario in scenarios:  # each is reported as soon as it ends
            report(scenario)
            runs = {label: asdict(run) for label, run in scenario.runs}
            results[scenario.key] = {"runs": runs, "figures": scenario.figures}
            crashed |= scenario.crash_if_failed and not all(r.ok for _, r in scenario.runs)

    results["targets"] = targets(results)
    print("\nTARGETS")
    for target in results["targets"]:
        print(f"  {target['verdict']:<5} {target['target']:<82} {target['measured']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nFigures written to {args.json_out}")
    if crashed:
        print("\nA pipeline run crashed (see the ! lines above).")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
