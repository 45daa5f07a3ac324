# loadtest/docgen/lint.py
#
# A measured figure written by hand is one that drifts: outside the
# generated regions, a page may hold no number with a measurement's unit
# (req/s, ms, µs, s, min, s/request, ×, %, KiB, MiB, "x faster" ...). Each
# such figure belongs in a region (figures.py, tables.py) or behind a link
# to the report that holds it. A few numbers with those units are not
# measurements: settings' defaults, a rule's or a test's bound, the
# manifests' quantities, the talk video's minute marks. ALLOWED names each
# kind of them, with why; a figure inside one of those phrases passes.

from __future__ import annotations

import re
from dataclasses import dataclass

from loadtest.docgen.regions import outside

UNIT = (
    r"req/s|requests? (?:a|per) second|s/request|s per request|ms|µs|us|ns"
    r"|seconds?|s|minutes?|min|hours?|h|×|x faster|x slower|times faster|times slower"
    r"|%|percent|KiB|MiB|GiB|KB|MB|GB|bytes?|B"
)
NUMBER = r"\d[\d,]*(?:\.\d+)?"
FIGURE = re.compile(rf"(?<![\w.,/:=\[-])~?({NUMBER})(?:\s?(?:{UNIT})(?![\w/])|x(?=\b))")


@dataclass(frozen=True)
class Allowed:
    pattern: re.Pattern[str]
    why: str


def allowed(pattern: str, why: str) -> Allowed:
    return Allowed(re.compile(pattern), why)


ALLOWED = (
    allowed(
        r"`?(?:FIB_[A-Z_]+|--[a-z][a-z-]*)`?(?: and `[^`]+`)? \((?:[^()]*\)|[^()]*$)",
        "a setting's or an option's default, in brackets after its name",
    ),
    allowed(
        rf"\bdefault:? ~?{NUMBER} ?\S+|{NUMBER} ?\S+ by default",
        "a setting's default, said as one",
    ),
    allowed(
        r"refresh every 2 s over the last 5 minutes",
        "the dashboards' settings (grafana/dashboards.py)",
    ),
    allowed(r"below 10 ms \(the\b", "the buckets' design (docs/design.md §5)"),
    allowed(r"\d+ µs \.\. \d+ s buckets", "the histogram's buckets (docs/design.md §4)"),
    allowed(
        r"≈ \d+(?:–\d+)? min\b|give or take \d+ minutes",
        "a minute mark of the talk's video, not a duration",
    ),
    allowed(r"a 100 ms period", "the kernel's CFS period, not a measurement"),
    allowed(
        r"ask for 0\.40 CPU and 640 MiB|2 CPUs and 1 GiB",
        "the Kubernetes manifests' requests and limits (tests/repo/test_k8s.py holds them)",
    ),
    allowed(
        r"\d[\d,]* KB (?:with no newline|of lines)|64 KiB of `1\\n`",
        "what a benchmark or a test sends, not what it measured",
    ),
    allowed(
        r"under 3 MiB per client|within 250 ms of its baseline",
        "a test's bound (tests/services), not a measurement",
    ),
)


@dataclass(frozen=True)
class Finding:
    page: str
    line: int
    figure: str
    text: str  # the line, stripped

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.figure!r} in: {self.text}"


def findings(text: str, page: str) -> list[Finding]:
    """Every measured figure outside the page's generated regions that no ALLOWED phrase
    covers."""
    found: list[Finding] = []
    for number, line in enumerate(outside(text, page).splitlines(), 1):
        spans = [m.span() for rule in ALLOWED for m in rule.pattern.finditer(line)]
        for match in FIGURE.finditer(line):
            start, end = match.span()
            if any(low <= start and end <= high for low, high in spans):
                continue
            found.append(Finding(page, number, match[0].strip(), line.strip()))
    return found
