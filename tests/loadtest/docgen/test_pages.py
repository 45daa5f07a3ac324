# tests/loadtest/docgen/test_pages.py
#
# The pages against the committed reports: every tracked README.md and
# docs/*.md is exactly what `make docs` writes, so a hand edit inside a
# region, or a report changed without `make docs`, fails here naming the
# page and the region. Outside the regions, the README and the docs pages
# hold no measured figure. Every NAME renders from the committed reports.

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.docgen import cli
from loadtest.docgen.catalog import CATALOG
from loadtest.docgen.context import Context
from loadtest.docgen.figures import RESULTS_RUN, TALK
from loadtest.docgen.lint import findings
from loadtest.docgen.pages import Page, generate_page
from loadtest.docgen.regions import find_regions
from loadtest.docgen.reports import RESULTS, ROOT, Reports

FIX = "run `make docs` (python -m loadtest.docgen) and commit what it writes"
# The pages whose prose the lint holds to "no measured figure by hand":
# docs/design.md is the contract (its figures are bounds and defaults), and
# docs/exercises.md states the protocol's defaults as each step's spec.
NOT_LINTED = ("docs/design.md", "docs/exercises.md")


def tracked_pages() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "README.md", "docs/*.md"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    names = [name for name in listed.decode().split("\0") if name]
    return sorted(name for name in names if name.count("/") <= 1)  # not docs/results/


PAGES = tracked_pages()


@pytest.fixture(scope="module")
def reports() -> Reports:
    return Reports()  # one cache for every page


def test_the_pages_are_found() -> None:
    assert "README.md" in PAGES
    assert not [page for page in PAGES if page.startswith("docs/results/")]


@pytest.mark.parametrize("page", PAGES)
def test_the_page_is_what_make_docs_writes(page: str, reports: Reports) -> None:
    generated = generate_page(page, (ROOT / page).read_text("utf-8"), reports)
    regions = ", ".join(f"fig:{name}" for name in generated.changed)
    assert not generated.stale, (
        f"{page}: {regions} differ from the committed reports under docs/results: {FIX}"
    )


def test_a_hand_edit_inside_a_region_is_caught(reports: Reports) -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    region = next(r for r in find_regions(text, "README.md") if not r.block)
    edited = text[: region.start] + "12,345" + text[region.end :]
    page = generate_page("README.md", edited, reports)
    assert page.stale
    assert page.changed == (region.name,)
    assert page.generated == text


def test_a_report_changed_without_make_docs_is_caught(tmp_path: Path) -> None:
    for relative in (TALK, RESULTS_RUN):  # the reports README.md reads
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(RESULTS / relative, tmp_path / relative)
    talk = tmp_path / TALK
    changed = talk.read_text("utf-8").replace(
        '"long_seconds_single": ', '"long_seconds_single": 1', 1
    )
    talk.write_text(changed, "utf-8")
    page = generate_page("README.md", (ROOT / "README.md").read_text("utf-8"), Reports(tmp_path))
    assert "talk.environment" in page.changed


@pytest.mark.parametrize("page", [page for page in PAGES if page not in NOT_LINTED])
def test_no_measured_figure_outside_the_regions(page: str) -> None:
    found = findings((ROOT / page).read_text("utf-8"), page)
    assert not found, (
        "a measured figure written by hand drifts from its report: put it in a "
        "<!-- fig:NAME --> region (loadtest/docgen/figures.py) or link the report:\n"
        + "\n".join(map(str, found))
    )


def test_the_lint_finds_figures_by_hand_and_spares_the_allowed() -> None:
    text = (
        "threads falls to 199 req/s, 53× less, p99 1.95 ms; fib(30) ≈ 0.069 s, 10 % of it\n"
        "<!-- fig:x -->10,592 req/s<!-- /fig:x --> on port 25002, fib(30), 3.14, `[2s]`\n"
        "`FIB_IDLE_TIMEOUT` (300 s), the stage (10 s by default), `--timeout=2h`\n"
        "```sh\nmake compare   # ~10 min\n```\n"
    )
    assert [f.figure for f in findings(text, "p.md")] == [
        "199 req/s", "53×", "1.95 ms", "0.069 s", "10 %", "~10 min",
    ]  # fmt: skip


def test_every_name_renders_from_the_committed_reports(reports: Reports) -> None:
    context = Context(reports, "docs/reference.md")
    empty = [figure.name for figure in CATALOG if not figure.render(context).strip()]
    assert empty == []


def test_check_says_which_page_and_region_and_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = Page("README.md", "a", "b", ("talk.variants",))
    monkeypatch.setattr(cli, "generate", lambda pages: [stale])
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "stale: README.md: fig:talk.variants" in out
    assert "run `make docs`" in out
