"""The docs a newcomer reads: a README that fits in ten minutes, and no link, anchor or test name
in any page that points at nothing."""

import re
from pathlib import Path

import pytest

from chat_agents_dagster_tests.helpers import REPO

TESTS = REPO / "chat_agents_dagster_tests"
PAGES = sorted(
    [REPO / "README.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md")]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
TEST_REFERENCE = re.compile(r"((?:[a-z_]+/)?test_[a-z_]+\.py)(?:::(test_[a-z0-9_]+))?")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in page.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }


def test_the_readme_is_at_most_200_lines() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_and_anchor_of_a_page_exists(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s) and mailto: not this test's to check
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_test_a_page_names_exists(page: Path) -> None:
    files = {path.relative_to(TESTS).as_posix(): path for path in TESTS.rglob("test_*.py")}
    missing = []
    for named, function in TEST_REFERENCE.findall(page.read_text()):
        found = [path for relative, path in files.items() if relative.endswith(named)]
        if not found:
            missing.append(named)
        elif function and not any(f"def {function}(" in path.read_text() for path in found):
            missing.append(f"{named}::{function}")
    assert missing == []
