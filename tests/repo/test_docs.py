# tests/repo/test_docs.py
#
# What the README and docs/ point at must be in the repository: a link or an
# image that names an untracked file is a promise a fresh clone cannot keep
# (a sample report was once linked while .gitignore kept it out). And the
# repository stands on its own: its contract is docs/design.md, not a file
# beside the checkout. The README is the front door: short, and linking
# every page of docs/; each page links back to it and to its neighbours.

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]

# [text](target) and ![alt](target), with an optional "title"; <img src="...">
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto: ...
# The one file allowed to reach outside: CI sets up the sandbox beside the clone.
OUTSIDE_ALLOWED = {".ci/run"}
# Spelled in pieces so that this file does not match itself.
OUTSIDE_MARKS = ("../" + "shared", "DESIGN" + ".md")
OUTSIDE_SECTION = re.compile(r"\bDESIGN" + " §")
README_MOST_LINES = 250
# The pages the README leads to, in the order of their navigation line.
PAGES = (
    "docs/talk.md",
    "docs/beyond.md",
    "docs/see-why.md",
    "docs/capacity.md",
    "docs/connections.md",
    "docs/reliability.md",
    "docs/kubernetes.md",
    "docs/exercises.md",
    "docs/reference.md",
    "docs/testing.md",
)


def tracked_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return {name for name in listed.decode().split("\0") if name}


def relative_targets(markdown: str) -> list[str]:
    """Every relative link or image target in a markdown text, anchors dropped."""
    targets = MARKDOWN_LINK.findall(markdown) + HTML_SOURCE.findall(markdown)
    local = [t.split("#", 1)[0] for t in targets if not EXTERNAL.match(t)]
    return [t for t in local if t]  # a bare "#anchor" links inside the page


def resolve(document: str, target: str) -> str:
    """The repository path a target of `document` names (both POSIX, relative to ROOT)."""
    parts: list[str] = []
    for part in (PurePosixPath(document).parent / target).parts:
        if part == "..":
            if not parts:
                return "../" + target  # leaves the repository: never tracked
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def documents() -> list[str]:
    return sorted(
        name for name in tracked_files() if name == "README.md" or re.match(r"docs/.*\.md$", name)
    )


def test_link_parsing_finds_links_images_and_html_images() -> None:
    text = (
        'See [the report](docs/results/summary.md#verdicts) and ![plot](docs/a.png "t").\n'
        '<img src="docs/b.png" width="50%"> [web](https://example.org) [here](#top)'
    )
    assert relative_targets(text) == ["docs/results/summary.md", "docs/a.png", "docs/b.png"]
    assert resolve("docs/results/summary.md", "rps.png") == "docs/results/rps.png"
    assert resolve("docs/design.md", "../README.md") == "README.md"
    assert resolve("README.md", "../elsewhere/notes.md").startswith("..")


def test_readme_and_docs_exist() -> None:
    assert "README.md" in documents()
    assert "docs/design.md" in documents(), "the project's own contract must be tracked"


@pytest.mark.parametrize("document", documents())
def test_every_relative_link_names_a_tracked_file(document: str) -> None:
    tracked = tracked_files()
    text = (ROOT / document).read_text("utf-8")
    missing = [
        target for target in relative_targets(text) if resolve(document, target) not in tracked
    ]
    assert not missing, f"{document} links files git does not track: {missing}"


def test_no_tracked_file_depends_on_what_lies_beside_the_checkout() -> None:
    offenders: list[str] = []
    for name in sorted(tracked_files() - OUTSIDE_ALLOWED):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue  # images: nothing to cite
        for number, line in enumerate(text.splitlines(), 1):
            if any(mark in line for mark in OUTSIDE_MARKS) or OUTSIDE_SECTION.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "cite docs/design.md instead:\n" + "\n".join(offenders)


def test_the_top_level_results_folder_is_ignored_but_docs_results_is_not() -> None:
    def ignored(path: str) -> bool:
        check = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False
        )
        return check.returncode == 0

    assert ignored("results/20260101-000000/summary.json")
    assert not ignored("docs/results/talk/summary.json")


def test_the_readme_fits_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text("utf-8").count("\n")
    assert lines <= README_MOST_LINES, (
        f"README.md has {lines} lines (at most {README_MOST_LINES}): move a section to a page "
        "of docs/ and link it"
    )


def linked(document: str) -> set[str]:
    text = (ROOT / document).read_text("utf-8")
    return {resolve(document, target) for target in relative_targets(text)}


def test_the_readme_links_every_page() -> None:
    missing = [page for page in (*PAGES, "docs/design.md") if page not in linked("README.md")]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_each_page_links_the_readme_and_its_neighbours(page: str) -> None:
    index = PAGES.index(page)
    neighbours = [PAGES[i] for i in (index - 1, index + 1) if 0 <= i < len(PAGES)]
    missing = [
        target for target in ("README.md", "docs/design.md", *neighbours)
        if target not in linked(page)
    ]  # fmt: skip
    assert not missing, f"{page} does not link {missing}"
