# tests/loadtest/docgen/test_regions.py
#
# The region engine on texts written here: inline and block regions filled,
# a block indented like its marker, markers in code left alone, a second run
# changing nothing, and every malformed region an error that names the
# file, the line and the NAME.

from __future__ import annotations

import pytest

from loadtest.docgen.regions import RegionError, fill, find_regions, outside

KNOWN = {"rps": "10,592", "table": "| a | b |\n|---|---|\n| 1 | 2 |", "empty": ""}


def run(text: str, known: dict[str, str] = KNOWN) -> tuple[str, list[str]]:
    return fill(text, "page.md", known, known.__getitem__)


def test_an_inline_region_is_filled_in_its_sentence() -> None:
    text = "Short requests: <!-- fig:rps -->old<!-- /fig:rps --> req/s alone.\n"
    filled, changed = run(text)
    assert filled == "Short requests: <!-- fig:rps -->10,592<!-- /fig:rps --> req/s alone.\n"
    assert changed == ["rps"]


def test_a_block_region_gets_lines_of_its_own() -> None:
    text = "Before.\n\n<!-- fig:table -->\nstale\nlines\n<!-- /fig:table -->\n\nAfter.\n"
    filled, _ = run(text)
    assert filled == (
        "Before.\n\n<!-- fig:table -->\n| a | b |\n|---|---|\n| 1 | 2 |\n<!-- /fig:table -->\n"
        "\nAfter.\n"
    )


def test_an_empty_block_and_an_indented_one() -> None:
    filled, _ = run("<!-- fig:empty -->\nx\n<!-- /fig:empty -->\n")
    assert filled == "<!-- fig:empty -->\n<!-- /fig:empty -->\n"
    filled, _ = run("- item\n\n  <!-- fig:table -->\n  <!-- /fig:table -->\n")
    assert "\n  | a | b |\n  |---|---|\n  | 1 | 2 |\n  <!-- /fig:table -->" in filled


def test_a_second_run_changes_nothing() -> None:
    text = (
        "A <!-- fig:rps --><!-- /fig:rps --> and <!-- fig:rps -->x<!-- /fig:rps -->.\n"
        "<!-- fig:table -->\n<!-- /fig:table -->\n"
    )
    once, changed = run(text)
    assert changed == ["rps", "rps", "table"]
    twice, changed_again = run(once)
    assert twice == once
    assert changed_again == []


def test_markers_in_code_are_text() -> None:
    text = (
        "Write `<!-- fig:NAME -->…<!-- /fig:NAME -->` inline.\n"
        "```md\n<!-- fig:unknown -->\n```\n"
        "and <!-- fig:rps -->1<!-- /fig:rps -->\n"
    )
    filled, changed = run(text)
    assert changed == ["rps"]
    assert filled.count("fig:NAME") == 2
    assert "<!-- fig:unknown -->" in filled
    assert [region.name for region in find_regions(text, "page.md")] == ["rps"]


def test_outside_blanks_the_generated_content_and_keeps_the_lines() -> None:
    text = (
        "a <!-- fig:rps -->10 ms<!-- /fig:rps --> b\n<!-- fig:table -->\n5 %\n<!-- /fig:table -->\n"
    )
    hand = outside(text, "page.md")
    assert "10 ms" not in hand
    assert "5 %" not in hand
    assert hand.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    ("text", "line", "name", "problem"),
    [
        ("ok\nsee <!-- fig:nope -->x<!-- /fig:nope -->\n", 2, "nope", "is not a known figure"),
        ("<!-- fig:rpss -->x<!-- /fig:rpss -->\n", 1, "rpss", "did you mean rps"),
        ("a <!-- fig:rps -->x\nb<!-- /fig:rps -->\n", 1, "rps", "never closed on its line"),
        ("x\n<!-- fig:table -->\n| a |\n", 2, "table", "is never closed"),
        ("<!-- fig:table -->\n| a |\n<!-- /fig:rps -->\n", 3, "rps", "closes fig:table"),
        ("a <!-- fig:rps -->x<!-- /fig:table --> b\n", 1, "table", "closes fig:rps"),
        ("\n\nstray <!-- /fig:rps -->\n", 3, "rps", "never opened"),
        ("<!-- fig:table -->\n<!-- fig:rps -->1<!-- /fig:rps -->\n", 2, "rps", "do not nest"),
        ("<!-- fig:table -->\n| a |<!-- /fig:table -->\n", 3 - 1, "table", "line of its own"),
    ],
)
def test_a_malformed_region_names_the_file_the_line_and_the_name(
    text: str, line: int, name: str, problem: str
) -> None:
    with pytest.raises(RegionError) as caught:
        run(text)
    message = str(caught.value)
    assert message.startswith(f"page.md:{line}: fig:{name} "), message
    assert problem in message


def test_a_figure_of_several_lines_cannot_be_inline() -> None:
    with pytest.raises(RegionError, match=r"page.md:1: fig:table renders several lines"):
        run("See <!-- fig:table --><!-- /fig:table -->.\n")
