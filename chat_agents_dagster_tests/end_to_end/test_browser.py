"""The Dagster UI in a real browser, as a user gets it: `chat-agents-dev` (the sandbox, a first run
of chat_agents_job, `dg dev`) started as a command, Debian's Chromium headless, driven by
Playwright, and assertions on what the pages render, not on GraphQL: the lineage graph's nodes and
the arrows between them, each table's checks, an asset page's checks passing. Screenshots of both
pages are saved (to docs/screenshots/ as well with CHAT_AGENTS_SAVE_SCREENSHOTS=1: the README
shows those), and Ctrl-C is proven to stop everything.

Without /usr/bin/chromium the tests that need it skip, loudly; `.ci/chromium.sh` installs it and
sets CHAT_AGENTS_REQUIRE_BROWSER=1, which turns the skip into a failure.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from chat_agents_dagster.defs.translator import MISTRAL_AGENTS_API_KEY, table_asset_key
from chat_agents_dagster.devtools import dg_dev
from chat_agents_dagster.tables import GOVERNANCE_TABLES, TABLES
from chat_agents_dagster_tests.dagster_helpers import CHECK_SPECS
from chat_agents_dagster_tests.helpers import isolate_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER_VARIABLE = "CHAT_AGENTS_REQUIRE_BROWSER"
SAVE_VARIABLE = "CHAT_AGENTS_SAVE_SCREENSHOTS"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
AGENTS = 40

READY_TIMEOUT = 300.0  # a first load and dg dev's start, on 2 busy cores
PAGE_TIMEOUT_MS = 60_000
STOP_TIMEOUT = 90.0
# Wide enough that the lineage graph, fitted to the window, is drawn in full: below a zoom level
# Dagster draws bare names (truncated: "agent_vers…_detail") without status or checks.
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}

# The graph as the settings define it, by the names the UI prints on the nodes: each table under
# its parent, the first table under the API (an external asset), the governance tables under
# the tables they are derived from.
API_NODE = MISTRAL_AGENTS_API_KEY.path[-1]
ALL_TABLES = (*TABLES, *GOVERNANCE_TABLES)
EXPECTED_NODES = {API_NODE, *(table.name for table in ALL_TABLES)}
EXPECTED_EDGES = {(table.parent or API_NODE, table.name) for table in ALL_TABLES}
EXPECTED_CHECKS = {
    table.name: {spec.name for spec in CHECK_SPECS if spec.asset_key == table_asset_key(table.name)}
    for table in ALL_TABLES
}

# Chromium's flags for a container: no sandbox (it runs as root), no GPU, nothing fetched in the
# background. Playwright adds --headless and a throwaway profile directory.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The lineage graph is one SVG: nodes are <foreignObject> boxes holding the asset's name (as a
# tooltip) and its status, edges are <path> elements with an arrow marker. An edge runs from the
# middle of its source's right side to the middle of its target's left side. Both are read in
# the SVG's own units, then mapped to the screen by the SVG's transforms, so that the graph's zoom
# and pan do not matter (a node's rendered box is no measure: its content overflows it).
GRAPH_SCRIPT = """() => {
  const svg = [...document.querySelectorAll('svg')].find(s => s.querySelector('foreignObject'));
  if (!svg) return null;
  const screen = (element, x, y) => {
    const point = svg.createSVGPoint();
    point.x = x;
    point.y = y;
    const mapped = point.matrixTransform(element.getScreenCTM());
    return [mapped.x, mapped.y];
  };
  const nodes = [...svg.querySelectorAll('foreignObject')].map(node => {
    const [x, y, width, height] = ['x', 'y', 'width', 'height'].map(
      name => node[name].baseVal.value);
    const [left, top] = screen(node, x, y);
    const [right, bottom] = screen(node, x + width, y + height);
    const named = node.querySelector('[data-tooltip]');
    return {name: named && named.getAttribute('data-tooltip'), text: node.textContent,
            left, right, middle: (top + bottom) / 2, height: bottom - top};
  });
  const edges = [...svg.querySelectorAll('path[marker-end]')].map(path => {
    const end = at => {
      const point = path.getPointAtLength(at);
      return screen(path, point.x, point.y);
    };
    return [end(0), end(path.getTotalLength())];
  });
  return {nodes, edges};
}"""


@dataclass
class DevCommand:
    """`chat-agents-dev` running: its process, where it serves, what it printed."""

    process: subprocess.Popen[bytes]
    output: Path
    url: str = ""
    sandbox_url: str = ""
    dagster_dev_group: int = 0

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def interrupt(self) -> int:
        """Ctrl-C, as in a terminal: SIGINT to the command alone; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT)


def command() -> list[str]:
    # The console script pip installed beside this interpreter: the command users run.
    script = Path(sys.executable).parent / "chat-agents-dev"
    assert script.exists(), f"{script} is missing: reinstall the package (pip install -e '.[dev]')"
    return [str(script)]


def printed(dev: DevCommand, pattern: str) -> str:
    found = re.search(pattern, dev.text())
    assert found, f"chat-agents-dev never printed {pattern!r}:\n{dev.tail()}"
    return found.group(1)


def wait_until_ready(dev: DevCommand) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        text = dev.text()
        if found := re.search(r"Dagster UI ready in \d+ s: (\S+)", text):
            dev.url = found.group(1)
            return
        if dev.process.poll() is not None:
            pytest.fail(f"chat-agents-dev exited ({dev.process.returncode}):\n{dev.tail()}")
        time.sleep(0.5)
    pytest.fail(f"chat-agents-dev not ready after {READY_TIMEOUT:.0f} s:\n{dev.tail()}")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCommand]:
    directory = tmp_path_factory.mktemp("dev")
    # What the `isolated` fixture gives each test (dlt state, DuckDB file and project dir in the
    # temporary directory, telemetry off), for a process that outlives one test.
    env = dict(os.environ)

    def unset(name: str, raising: bool = True) -> None:
        env.pop(name, None)

    isolate_environment(directory, env.__setitem__, unset)
    # The nightly schedule is RUNNING by default; a test crossing 02:00 UTC would get a run more.
    env["CHAT_AGENTS_NIGHTLY_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    arguments = ["--port", "0", "--agents", str(AGENTS), "--home", str(directory / "home")]
    output = directory / "chat-agents-dev.log"
    clock = time.monotonic()
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*command(), *arguments],
            cwd=REPO_ROOT,  # where users run it: ./dagster.yaml is the instance's settings
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DevCommand(process, output)
    try:
        wait_until_ready(dev)
        elapsed = time.monotonic() - clock
        print(f"\n[browser] chat-agents-dev, start to a UI with data: {elapsed:.1f} s")
        dev.sandbox_url = printed(dev, r"Sandbox API with \d+ agents at (\S+)")
        dev.dagster_dev_group = int(printed(dev, r"process group (\d+)"))
        yield dev
    finally:
        with suppress(subprocess.TimeoutExpired):
            dev.interrupt()
        # Whatever is left, if Ctrl-C did not do its job (test_ctrl_c_... says so).
        for pgid in (process.pid, dev.dagster_dev_group):
            if pgid:
                dg_dev.signal_group(pgid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def browser(dev: DevCommand) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = (
            f"NO BROWSER, the tests in a browser did NOT run: {CHROMIUM} is missing. Install"
            " Debian's chromium with `sudo bash .ci/chromium.sh`."
        )
        if os.environ.get(REQUIRE_BROWSER_VARIABLE, "").strip().lower() in ("1", "true"):
            pytest.fail(f"{message} {REQUIRE_BROWSER_VARIABLE} is set: failing, not skipping.")
        pytest.skip(message)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, dev: DevCommand) -> Iterator[Page]:
    # The first visit to a new instance opens Dagster's "join the community" dialog over the
    # page; dismissing it is recorded in the instance, as clicking "Skip" does.
    dg_dev.graphql(dev.url, "mutation { setNuxSeen }")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Page, directory: Path, name: str) -> None:
    path = directory / name
    page.screenshot(path=str(path))
    print(f"[browser] screenshot {path}")
    if os.environ.get(SAVE_VARIABLE, "").strip().lower() in ("1", "true"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)


def rendered_graph(page: Page) -> dict[str, Any]:
    """The graph once every node shows its data and the layout has stopped moving."""
    last: dict[str, Any] | None = None
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        graph = page.evaluate(GRAPH_SCRIPT)
        complete = (
            graph is not None
            and {node["name"] for node in graph["nodes"]} >= EXPECTED_NODES
            and not any("Loading" in node["text"] for node in graph["nodes"])
        )
        if complete and graph == last:
            return graph
        last = graph if complete else None
        page.wait_for_timeout(500)
    pytest.fail(f"the lineage graph never settled: {last}\n{page.inner_text('body')[:3000]}")


def edge_ends(graph: dict[str, Any]) -> set[tuple[str, str]]:
    """Each arrow as (source, target): the nodes whose right and left sides' middles its ends
    touch, within a tenth of a node's height."""
    nodes = graph["nodes"]

    def nearest(point: list[float], side: str) -> str:
        x, y = point
        distance, name = min((abs(n[side] - x) + abs(n["middle"] - y), n["name"]) for n in nodes)
        assert distance < 0.1 * nodes[0]["height"], f"an edge ends at no node: {point} {nodes}"
        return str(name)

    return {(nearest(start, "right"), nearest(end, "left")) for start, end in graph["edges"]}


@pytest.mark.slow
def test_the_lineage_graph_shows_every_table_and_every_edge_the_settings_define(
    dev: DevCommand, page: Page, tmp_path: Path
) -> None:
    page.goto(f"{dev.url}/asset-groups")
    graph = rendered_graph(page)
    assert not page.get_by_role("dialog").is_visible(), "a dialog covers the graph"
    screenshot(page, tmp_path, "asset-lineage.png")

    names = [node["name"] for node in graph["nodes"]]
    assert sorted(names) == sorted(EXPECTED_NODES), "each asset once, and nothing else"
    assert len(graph["edges"]) == len(EXPECTED_EDGES)
    assert edge_ends(graph) == EXPECTED_EDGES

    # Each table's node says that the first run materialized it and that every check passed.
    for node in graph["nodes"]:
        if node["name"] == API_NODE:
            continue
        checks = len(EXPECTED_CHECKS[node["name"]])
        assert "Materialized" in node["text"], node
        assert f"Asset checks{checks} / {checks} Passed" in node["text"], node


@pytest.mark.slow
def test_an_asset_page_shows_each_of_its_checks_passing(
    dev: DevCommand, page: Page, tmp_path: Path
) -> None:
    table = TABLES[0].name
    expected = EXPECTED_CHECKS[table]
    assert expected, f"the code defines no check on {table}"
    page.goto(f"{dev.url}/assets/{table_asset_key(table).to_user_string()}?view=checks")
    page.get_by_text(f"Checks ({len(expected)})").wait_for()

    # The list on the left: each check's name and the status of its latest execution.
    rows = page.locator("[class*='checkRow']")
    expect(rows).to_have_count(len(expected))  # the list renders after its heading
    listed = {
        row.locator("[title]").first.get_attribute("title"): row.inner_text().splitlines()[-1]
        for row in rows.all()
    }
    assert listed == dict.fromkeys(expected, "Succeeded"), page.inner_text("body")[:3000]

    # Each check's own panel, opened from the list: its latest evaluation passed. The panel is
    # the innermost block holding both its tabs and its result, and starts with the check's name.
    panel = (
        page.locator("div")
        .filter(has=page.get_by_text("Execution history", exact=True))
        .filter(has=page.get_by_text("Evaluation result", exact=True))
        .last
    )
    # primary_key last, so that the screenshot shows its figures (rows, null and duplicated keys).
    for name in sorted(expected, key=lambda name: (name == "primary_key", name)):
        rows.filter(has=page.locator(f"[title='{name}']")).click()
        page.wait_for_url(re.compile(f"checkDetail={name}"))
        passed = re.compile(rf"^{re.escape(name)}\n.*Evaluation result\s+Passed\n", re.DOTALL)
        expect(panel).to_have_text(passed, use_inner_text=True)
    screenshot(page, tmp_path, "asset-checks.png")


@pytest.mark.slow
def test_ctrl_c_stops_dagster_dev_and_the_sandbox(dev: DevCommand) -> None:
    clock = time.monotonic()
    status = dev.interrupt()
    print(f"[browser] chat-agents-dev stopped {time.monotonic() - clock:.1f} s after Ctrl-C")
    assert status == 0, dev.tail()
    assert "dg dev exited 0 on SIGTERM" in dev.text(), dev.tail()
    deadline = time.monotonic() + 10
    while group_alive(dev.dagster_dev_group) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(dev.dagster_dev_group), "a dg dev process outlived the command"
    for url in (dev.url, dev.sandbox_url):
        address = urllib.parse.urlsplit(url)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address.hostname, address.port), timeout=5).close()
