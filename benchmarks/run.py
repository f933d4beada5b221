"""Benchmark the naive rest_api pipeline against ours, on the same sandbox world in the same run.

Every pipeline run is a subprocess (so its wall time includes start-up, as users see it, and its
peak memory is its own). Requests are counted by the sandbox. See benchmarks/README.md.
"""

import argparse
import contextlib
import itertools
import json
import os
import random
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

import duckdb

from chat_agents_dagster.sandbox import SandboxConfig, SandboxServer, World

REPO = Path(__file__).resolve().parent.parent
NAIVE_SCRIPT = Path(__file__).resolve().parent / "naive_pipeline.py"
API_KEY = "bench-key"
DATASET = "chat_agents_data"
TABLES = ("agents", "agent_detail", "agent_versions", "agent_aliases", "agent_version_detail")
WORKERS_ENV = "SOURCES__CHAT_AGENTS_SOURCE__EXTRACT__WORKERS"
# Ours exactly as users run it, plus one JSON line with its own peak RSS (memory scenario only).
OURS_CMD = [sys.executable, "-m", "chat_agents_dagster.source", "--json"]
OURS_WITH_RSS_CMD = [
    sys.executable,
    "-c",
    "import json, resource, sys\n"
    "from chat_agents_dagster.source.__main__ import main\n"
    "code = main(['--json'])\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "sys.stdout.write(json.dumps({'ru_maxrss_kib': peak}) + '\\n')\n"
    "sys.exit(code)\n",
]
# dlt settings in the caller's shell would silently change what is measured: children get none.
_INHERITED_SETTINGS: tuple[str, ...] = ("SOURCES__", "DESTINATION", "EXTRACT__", "NORMALIZE__")
_INHERITED_SETTINGS += ("LOAD__", "RUNTIME__", "DLT_", "MISTRAL_API_KEY")


@dataclass
class Lane:
    """One pipeline's working files: DuckDB file, DLT_DATA_DIR (kept between runs, so incremental
    state persists) and the working directory it runs in."""

    pipeline: str  # "naive" or "ours"
    root: Path

    def __post_init__(self) -> None:
        (self.root / "cwd").mkdir(parents=True, exist_ok=True)

    @property
    def db(self) -> Path:
        return self.root / f"{self.pipeline}.duckdb"


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
    if lane.pipeline == "ours":
        env["DLT_PROJECT_DIR"] = str(REPO)  # the repo's .dlt/config.toml defaults
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


def run_pipeline(
    lane: Lane,
    server: SandboxServer,
    args: argparse.Namespace,
    extra_env: dict[str, str] | None = None,
    with_rss: bool = False,
) -> Run:
    if lane.pipeline == "naive":
        cmd = [sys.executable, str(NAIVE_SCRIPT)]
    else:
        cmd = OURS_WITH_RSS_CMD if with_rss else OURS_CMD
    env = child_env(lane, server.base_url, extra_env or {})
    server.stats.reset()
    code, wall, peak_kib = spawn(cmd, env, lane, args.timeout)
    stats = server.stats.snapshot()
    summary: dict[str, Any] = {}
    for line in (lane.root / "stdout").read_text().splitlines():
        if line.startswith("{"):  # log lines may reach stdout too; the JSON lines are objects
            with contextlib.suppress(ValueError):
                summary |= json.loads(line)
    # The child's own figure where it reports one (it is the same measure: this process's peak).
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
        truth=world_truth(server.world),
        by_route=stats["by_route"],
        summary=summary,
        error=error,
    )


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
        f"  {'pipeline':<14}{'wall s':>9}{'requests':>10}{'429s':>7}{'peak MiB':>10}  "
        "rows agents/detail/versions/aliases/version_detail"
    )
    for label, run in scenario.runs:
        rows = "/".join(str(run.rows[t]) for t in TABLES)
        print(
            f"  {label:<14}{run.wall_s:>9.1f}{run.requests:>10}{run.status_429:>7}"
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
    for note in scenario.notes:
        print(f"  {note}")


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    workers: int  # in effect for ours
    workers_env: dict[str, str]  # empty unless --workers

    def run(self, lane: Lane, server: SandboxServer, extra: dict[str, str] | None = None) -> Run:
        if lane.pipeline == "naive":
            return run_pipeline(lane, server, self.args)
        return run_pipeline(lane, server, self.args, self.workers_env | (extra or {}))

    def loads(self, chosen: set[int]) -> Iterator[Scenario]:
        """Scenarios 1-3 on one world. 2 and 3 re-run on top of 1, so 1 runs whenever they do."""
        args, latency_s = self.args, self.args.latency_ms / 1000
        naive, ours = Lane("naive", self.root / "naive"), Lane("ours", self.root / "ours")
        size = f"{args.agents} agents x {args.versions} versions, {args.latency_ms:g} ms"
        with sandbox(args.agents, args, args.latency_ms) as server:
            n, full = self.run(naive, server), self.run(ours, server)
            bound = full.requests * latency_s / self.workers
            figures = {
                "naive_over_ours_time": ratio(n.wall_s, full.wall_s, n, full),
                "bound_s": round(bound, 2),
                "ours_over_bound": ratio(full.wall_s, bound, full),
                "ours_request_phase_s": full.request_window_s,
                "ours_request_phase_over_bound": ratio(full.request_window_s, bound, full),
            }
            yield Scenario(
                "1_full_load",
                f"Scenario 1: full load, both empty ({size})",
                [("naive", n), ("ours", full)],
                figures,
                [
                    f"naive/ours time: {fmt(figures['naive_over_ours_time'])}",
                    f"ours vs bound requests x latency / workers = {full.requests} x"
                    f" {latency_s:g} / {self.workers} = {bound:.1f} s:"
                    f" {fmt(figures['ours_over_bound'])} for the whole run,"
                    f" {fmt(figures['ours_request_phase_over_bound'])} for its request phase"
                    f" ({full.request_window_s:g} s from its first API request to its last)",
                ],
            )
            for number, key, title in (
                (2, "2_rerun_unchanged", "Scenario 2: re-run, nothing changed"),
                (3, "3_rerun_after_night", "Scenario 3: re-run after a typical night"),
            ):
                if number not in chosen:
                    continue
                night = mutate(server.world, args) if number == 3 else {}
                n, o = self.run(naive, server), self.run(ours, server)
                figures = {
                    "naive_over_ours_time": ratio(n.wall_s, o.wall_s, n, o),
                    "ours_requests_pct_of_full": ratio(100 * o.requests, full.requests, o, full),
                    "mutations": night,
                }
                yield Scenario(
                    key,
                    f"{title} ({size}){': ' + json.dumps(night) if night else ''}",
                    [("naive (reload)", n), ("ours", o)],
                    figures,
                    [
                        f"naive/ours time: {fmt(figures['naive_over_ours_time'])}",
                        f"ours requests: {fmt(figures['ours_requests_pct_of_full'], '%')}"
                        f" of ours' full load ({full.requests})",
                    ],
                )

    def rate_limit(self) -> Iterator[Scenario]:
        args = self.args
        with sandbox(args.rl_agents, args, args.latency_ms, args.rps_limit) as server:
            n = self.run(Lane("naive", self.root / "rl-naive"), server)
            pacing = {"SOURCES__CHAT_AGENTS_SOURCE__REQUESTS_PER_SECOND": f"{args.rps_limit:g}"}
            o = self.run(Lane("ours", self.root / "rl-ours"), server, pacing)
        figures: dict[str, Any] = {
            f"{r.pipeline}_429_share_pct": ratio(100 * r.status_429, r.requests) for r in (n, o)
        }
        figures["failed_runs"] = {r.pipeline: int(not r.ok) for r in (n, o)}
        yield Scenario(
            "4_rate_limit",
            f"Scenario 4: full load of a fresh, smaller world under {args.rps_limit:g}"
            f" requests/s ({args.rl_agents} agents x {args.versions} versions,"
            f" {args.latency_ms:g} ms; --rl-agents to change)",
            [("naive", n), ("ours", o)],
            figures,
            [
                f"429 share: naive {fmt(figures['naive_429_share_pct'], '%')},"
                f" ours {fmt(figures['ours_429_share_pct'], '%')};"
                f" failed runs: {figures['failed_runs']}"
            ],
            crash_if_failed=False,
        )

    def memory(self) -> Iterator[Scenario]:
        runs: list[tuple[str, Run]] = []
        for agents in self.args.mem_agents:
            with sandbox(agents, self.args, self.args.mem_latency_ms) as server:
                lane = Lane("ours", self.root / f"mem-{agents}")
                run = run_pipeline(lane, server, self.args, self.workers_env, with_rss=True)
                runs.append((f"ours {agents}", run))
        (_, at_small), (_, at_large) = runs
        small, large = self.args.mem_agents
        figures = {
            "memory_ratio": ratio(at_large.peak_mib, at_small.peak_mib, *(at_small, at_large))
        }
        yield Scenario(
            "5_memory",
            f"Scenario 5: ours' full load, peak RSS ({self.args.versions} versions per agent,"
            f" {self.args.mem_latency_ms:g} ms)",
            runs,
            figures,
            [f"memory ratio {large}/{small}: {fmt(figures['memory_ratio'])}"],
        )


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

    def rerun(f: dict[str, Any]) -> tuple[bool, str]:
        pct, speed = f["ours_requests_pct_of_full"], f["naive_over_ours_time"]
        passed = within(pct, high=15) and within(speed, low=20)
        return passed, f"{fmt(pct, '%')} of requests, {fmt(speed)}"

    def rate_limit(f: dict[str, Any]) -> tuple[bool, str]:
        share, failed = f["ours_429_share_pct"], f["failed_runs"]["ours"]
        passed = failed == 0 and share is not None and share < 5
        return passed, f"ours: {failed} failed, {fmt(share, '%')} 429s"

    speed, memory = "naive_over_ours_time", "memory_ratio"
    bound, phase = "ours_over_bound", "ours_request_phase_over_bound"
    return [
        check(
            "full load >= 10x faster than naive",
            "1_full_load",
            lambda f: (within(f[speed], low=10), fmt(f[speed])),
        ),
        check(
            "full load within 1.5x of requests x latency / workers (whole run)",
            "1_full_load",
            lambda f: (within(f[bound], high=1.5), fmt(f[bound])),
        ),
        check(
            "full load within 1.5x of requests x latency / workers (request phase)",
            "1_full_load",
            lambda f: (within(f[phase], high=1.5), fmt(f[phase])),
        ),
        check(
            "unchanged re-run <= 15% of requests, >= 20x faster than naive",
            "2_rerun_unchanged",
            rerun,
        ),
        check(
            "under the rps limit: no failed run, 429s < 5% of requests", "4_rate_limit", rate_limit
        ),
        check(
            "peak memory at large <= 1.3x that at small",
            "5_memory",
            lambda f: (within(f[memory], high=1.3), fmt(f[memory])),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated subset of 1-5")
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
    workers_env = {WORKERS_ENV: str(args.workers)} if args.workers else {}
    results: dict[str, Any] = {"settings": vars(args) | {"workers_in_effect": workers}}
    crashed = False

    with tempfile.TemporaryDirectory(prefix="chat-agents-bench-") as tmp:
        root = args.workdir or Path(tmp)
        bench = Bench(args, root, workers, workers_env)
        print(
            f"Ours: {' '.join(OURS_CMD[1:])}, {workers} extract workers"
            f" ({'--workers' if args.workers else 'repo config'}); work dir {root}"
        )
        scenarios = itertools.chain(
            bench.loads(chosen) if chosen & {1, 2, 3} else (),
            bench.rate_limit() if 4 in chosen else (),
            bench.memory() if 5 in chosen else (),
        )
        for scenario in scenarios:  # each is reported as soon as it ends
            report(scenario)
            runs = {label: asdict(run) for label, run in scenario.runs}
            results[scenario.key] = {"runs": runs, "figures": scenario.figures}
            crashed |= scenario.crash_if_failed and not all(r.ok for _, r in scenario.runs)

    results["targets"] = targets(results)
    print("\nTARGETS")
    for target in results["targets"]:
        print(f"  {target['verdict']:<5} {target['target']:<64} {target['measured']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nFigures written to {args.json_out}")
    if crashed:
        print("\nA pipeline run crashed (see the ! lines above).")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
