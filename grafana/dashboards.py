# grafana/dashboards.py
#
# The lab's Grafana dashboards as code, with Grafana's own typed builders
# (grafana-foundation-sdk, the release for the Grafana version in
# docker-compose.yml). `make dashboards` runs `python grafana/dashboards.py`,
# which writes grafana/dashboards/fiblab-variants.json ("Variants side by
# side", the home dashboard) and fiblab-convoy.json. The JSON is committed
# (Grafana provisions it from files); tests/repo/test_dashboards.py re-generates it
# in memory and fails when the committed files are stale.
#
# Queries use only the metric names of docs/design.md §4. Every panel's description
# says what Beazley's PyCon 2015 talk predicts there.

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "fiblab-prometheus"  # grafana/provisioning/datasources/prometheus.yaml
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAG = "fiblab"

# Grafana turns $__rate_interval into max(4 x scrape interval, $__interval +
# scrape interval): 4 s with the datasource's 1 s timeInterval, short enough
# to show a convoy second by second, long enough for two samples.
WINDOW = "$__rate_interval"
# Locust's workers report to the master every 3 s, so the exporter's counters
# move in 3 s steps: a rate over them needs a window holding two reports.
LOCUST_WINDOW = "10s"
REFRESH = "2s"  # needs GF_DASHBOARDS_MIN_REFRESH_INTERVAL <= 2s, else Grafana makes it 5s
CPU_LIMIT = 2.0  # docker-compose.yml: cpus: ${FIB_CPUS:-2} for every variant
# The GIL probe's panel, on both dashboards: it says how busy the GIL is (a
# probe thread's own wait), not which server thread waits.
GIL_BUSY_TITLE = "GIL busy: how long a probe thread waits for the GIL"

# Request sizes. The talk's short request is fib(1), its long ones fib(30)
# to fib(50); anything from fib(20) (about a millisecond of CPU) up counts as
# long here. The regexes match the `n` label (Prometheus anchors them).
SHORT_N = "1?[0-9]"  # n = 0..19
LONG_N = "[2-9][0-9]"  # n = 20..99 (FIB_MAX_N is 45)

# Scrape health. Prometheus writes `up` for every configured target at every
# scrape: 1 when it succeeded, 0 when it failed (container stopped, crashed,
# restarting, or no reply within the 1 s timeout), so a down variant keeps a
# series at 0 while its fib_* series go stale and its lines just end. Jobs
# and targets are prometheus/prometheus.yml's: job `fib` scrapes
# `<variant>:9100`, so the variant is the target's host name.
VARIANT_JOB = "fib"
LOCUST_JOB = "locust"
VARIANT_FROM_INSTANCE = "(.+):[0-9]+"

# One colour per variant, by what the talk says it does under a convoy:
# warm colours for the variants whose fib runs under the server's own GIL
# (they collapse), cool ones for those that hand it to a process pool (they
# hold), purple for the one-client-at-a-time starting point.
VARIANT_COLOURS = {
    "sync": "purple",
    "threads": "red",
    "threads-procpool": "green",
    "coro": "orange",
    "coro-threadpool": "yellow",
    "coro-procpool": "blue",
    "coro-asyncsocket": "dark-blue",
    "asyncio": "dark-orange",
    "asyncio-procpool": "dark-green",
    # Beyond the talk: gevent and uvloop run fib inline (warm, as coro and
    # asyncio); the interpreter pools hold like the process pools (cool);
    # prefork is both, by the process a client lands on (purple, lighter
    # than sync's); asyncio-tothread convoys as coro-threadpool does (a
    # darker yellow), trio stalls as the other inline loops (warm).
    "gevent": "semi-dark-orange",
    "asyncio-uvloop": "light-orange",
    "prefork": "light-purple",
    "threads-interppool": "light-green",
    "asyncio-interppool": "light-blue",
    "asyncio-tothread": "dark-yellow",
    "trio": "light-red",
}


class Overridable(Protocol):
    def override_by_regexp(
        self, regexp: str, properties: list[models.DynamicConfigValue]
    ) -> Self: ...


PanelT = TypeVar("PanelT", bound=Overridable)


def variant_colours(panel: PanelT) -> PanelT:
    """Each variant's series in its colour: display names start with the variant."""
    for variant, colour in VARIANT_COLOURS.items():
        fixed = {"mode": "fixed", "fixedColor": colour}
        # "threads( .*)?" so that "threads" does not also colour "threads-procpool".
        panel = panel.override_by_regexp(
            f"^{variant}( .*)?$", [models.DynamicConfigValue(id_val="color", value=fixed)]
        )
    return panel


def dashed(panel: PanelT, suffix_regexp: str, dash: list[float]) -> PanelT:
    """Series whose name ends with `suffix_regexp` drawn dashed (e.g. p99 beside p50)."""
    style = {"fill": "dash", "dash": dash}
    return panel.override_by_regexp(
        f".*{suffix_regexp}$", [models.DynamicConfigValue(id_val="custom.lineStyle", value=style)]
    )


def query(expr: str, legend: str, ref_id: str, *, instant: bool = False) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    return target.instant() if instant else target.range()


def rate(metric: str, matchers: str) -> str:
    window = LOCUST_WINDOW if metric.startswith("locust_") else WINDOW
    return f"rate({metric}{{{matchers}}}[{window}])"


class Layout:
    """Places panels left to right on Grafana's 24-column grid, numbering them."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> builders.Row:
        self.y += self.row_height
        row = builders.Row(title).id(self._id()).grid_pos(models.GridPos(h=1, w=24, x=0, y=self.y))
        self.x, self.y, self.row_height = 0, self.y + 1, 0
        return row

    def place(self, width: int, height: int) -> tuple[int, models.GridPos]:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = models.GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.row_height = max(self.row_height, height)
        return self._id(), pos


def time_series(
    layout: Layout, title: str, description: str, unit: str, width: int, height: int = 8
) -> timeseries.Panel:
    panel_id, pos = layout.place(width, height)
    panel = (
        timeseries.Panel()
        .id(panel_id)
        .grid_pos(pos)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(2)
        .fill_opacity(0)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)  # a gap is a stall or a restart: show it
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
            .sort_by("Last *")
            .sort_desc(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    return variant_colours(panel)


def log_axis(panel: timeseries.Panel) -> timeseries.Panel:
    """Latency and rate span several decades (µs to s; 17,000 to 0 req/s)."""
    return panel.scale_distribution(
        common_builders.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
    )


def bar_gauge(
    layout: Layout, title: str, description: str, unit: str, width: int, height: int = 8
) -> bargauge.Panel:
    panel_id, pos = layout.place(width, height)
    panel = (
        bargauge.Panel()
        .id(panel_id)
        .grid_pos(pos)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .value_mode(common.BarGaugeValueMode.TEXT)
        .name_placement(common.BarGaugeNamePlacement.LEFT)
        .show_unfilled(True)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return variant_colours(panel)


def target_health(layout: Layout) -> stat.Panel:
    """One tile per scrape target, UP (green) or DOWN (red), across the top.

    Not filtered by the variant variable: its options come from fib_info,
    which a variant that never started has never written.
    """
    panel_id, pos = layout.place(24, 3)
    variant_up = (
        f'label_replace(up{{job="{VARIANT_JOB}"}}, "variant", "$1", "instance", '
        f'"{VARIANT_FROM_INSTANCE}")'
    )
    state = {
        "1": models.ValueMappingResult(text="UP", color="green", index=0),
        "0": models.ValueMappingResult(text="DOWN", color="red", index=1),
    }
    return (
        stat.Panel()
        .id(panel_id)
        .grid_pos(pos)
        .title("Targets up")
        .description(
            "Prometheus' own `up` for each variant and for the load generator's "
            "exporter (Locust master): UP when its last scrape (every second) "
            "succeeded, DOWN when it failed: the container is stopped, crashed or "
            "restarting, or did not answer /metrics within the 1 s timeout. A down "
            "variant's lines simply end in the other panels; here it stays, in red. "
            "Every configured variant, whatever the variant filter. Not the talk's "
            "concern: its servers had no metrics; these serve /metrics from a thread "
            "of their own, so a busy variant (sync with a client, coro inside a long "
            "fib) stays UP."
        )
        .datasource(DATASOURCE)
        .unit("none")
        .mappings([models.ValueMap(options=state)])
        .thresholds(
            builders.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(None, "red"), models.Threshold(1, "green")])
        )
        .no_value("no scrape target")
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .orientation(common.VizOrientation.AUTO)  # a wide, low panel: tiles side by side
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .text(common_builders.VizTextDisplayOptions().title_size(14).value_size(18))
        .with_target(query(f"min by (variant) ({variant_up})", "{{variant}}", "A", instant=True))
        .with_target(query(f'min(up{{job="{LOCUST_JOB}"}})', "load generator", "B", instant=True))
    )


def gil_busy(layout: Layout, variants: str, width: int, height: int = 8) -> timeseries.Panel:
    """How busy the GIL is: the share of time the GIL probe's own thread waits
    for it (docs/design.md §4: the probe's two counters). Not which server
    thread waits: that is the timeline's (docs/design.md §6.6)."""
    wait = f"sum by (variant) ({rate('fib_gil_wait_seconds_total', variants)})"
    probed = f"sum by (variant) ({rate('fib_gil_probe_seconds_total', variants)})"
    return (
        time_series(
            layout,
            GIL_BUSY_TITLE,
            "How busy the GIL is, not who waits for it: the share of the time the "
            "server's GIL probe, a thread of its own that asks for the GIL every "
            "millisecond, waits for it. A single-threaded loop computing fib inline "
            "(coro, asyncio, gevent, asyncio-uvloop, trio) reads as high as threads while a "
            "long request runs, though no other server thread waits: the loop holds "
            "the GIL and only the probe wants it. Which server threads wait: the "
            "timeline (`make timeline`, docs/design.md §6.6). Talk: threads during a "
            "convoy are fully contended (about 83 %: each ask waits the 5 ms switch "
            "interval, then the probe sleeps 1 ms); the process pools and interpreter "
            "pools read about 0 (their fib holds another GIL); prefork shows the "
            "average of its processes.",
            "percentunit",
            width,
            height,
        )
        .axis_label("probe's wait share")
        .axis_soft_min(0)
        .axis_soft_max(1)
        .with_target(query(f"{wait} / {probed}", "{{variant}}", "A"))
    )


def variant_variable() -> builders.QueryVariable:
    return (
        builders.QueryVariable("variant")
        .label("variant")
        .description("Server variants to show (docs/design.md §3), from fib_info")
        .datasource(DATASOURCE)
        .query("label_values(fib_info, variant)")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.DISABLED)
        .multi(True)
        .include_all(True)
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def size_variable() -> builders.CustomVariable:
    # A single-valued custom variable: Grafana inserts its value into the
    # regex as it is (no escaping), so the value may itself be a regex.
    options = {"all": ".*", "short (n<20)": SHORT_N, "long (n>=20)": LONG_N}
    return (
        builders.CustomVariable("n")
        .label("request size")
        .description("Filter on fib(n): all, short (n < 20) or long (n >= 20)")
        .values(", ".join(f"{text} : {value}" for text, value in options.items()))
        .multi(False)
        .include_all(False)
        .current(models.VariableOption(selected=True, text="all", value=".*"))
        .options(
            [
                models.VariableOption(selected=text == "all", text=text, value=value)
                for text, value in options.items()
            ]
        )
    )


def long_request_annotation() -> builders.AnnotationQuery:
    """A mark each second in which a long request was answered, per variant.

    `changes` catches every further long reply; a variant's first long reply
    creates its series (there is no earlier zero sample to change from), so
    a series that did not exist 2 s before counts too. The range is 3 s:
    Prometheus 3's ranges leave out their left end, so [2s] holds only two
    1 s scrapes, one if a scrape is late, and `changes` needs two.
    """
    long = f'fib_requests_total{{variant=~"$variant", n=~"{LONG_N}"}}'
    expr = f"sum by (variant) ((changes({long}[3s]) > 0) or ({long} unless {long} offset 2s))"
    return (
        builders.AnnotationQuery()
        .name("long request answered")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("rgba(255, 96, 96, 0.6)")
        .expr(expr)
    )


def loadgen_annotation() -> builders.AnnotationQuery:
    expr = 'sum by (variant) (changes(locust_users{variant=~"$variant"}[3s])) > 0'  # as above
    return (
        builders.AnnotationQuery()
        .name("load generator users change")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("rgba(96, 160, 255, 0.6)")
        .expr(expr)
    )


# Fields of Grafana's Prometheus annotation that the SDK's generic
# AnnotationQuery model lacks: without `step` Grafana evaluates annotation
# queries every 60 s, far too coarse for a 1 s scrape.
ANNOTATION_EXTRAS = {
    "long request answered": {"titleFormat": "{{variant}}: long request answered"},
    "load generator users change": {"titleFormat": "{{variant}}: Locust users changed"},
}


def dashboard(title: str, uid: str, description: str) -> builders.Dashboard:
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time("now-5m", "now")
        .refresh(REFRESH)
        .timepicker(builders.TimePicker().refresh_intervals(["1s", "2s", "5s", "10s", "30s", "1m"]))
        .link(
            builders.DashboardLink("fiblab")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(True)
        )
    )


# The variants dashboard's label matchers: the variant filter, and with it the
# request-size filter (on the servers' n, and on Locust's request name "fib(N)").
VARIANT_MATCH = 'variant=~"$variant"'
SIZED_MATCH = 'variant=~"$variant", n=~"$n"'
LOCUST_SIZED_MATCH = 'variant=~"$variant", name=~"fib\\\\(($n)\\\\)"'
SERVER_RPS = f"sum by (variant) ({rate('fib_requests_total', SIZED_MATCH)})"
CPU_CORES = f"sum by (variant) ({rate('fib_cpu_seconds_total', VARIANT_MATCH)})"


def variants_dashboard() -> builders.Dashboard:
    """Variants side by side: throughput, latency, CPU and memory, connections, errors; a
    builder per row, each placing its panels after the previous row's."""
    layout = Layout()
    board = dashboard(
        "fiblab: variants side by side",
        "fiblab-variants",
        "Every server variant of Beazley's PyCon 2015 talk under the same load: "
        "throughput, latency, CPU, memory and connections, side by side.",
    )
    board = board.with_variable(variant_variable()).with_variable(size_variable())
    board = board.annotation(long_request_annotation()).annotation(loadgen_annotation())
    board = board.with_panel(target_health(layout))
    for add_row in (now_row, throughput_row, latency_row, cpu_row, connections_row):
        board = add_row(board, layout)
    return board


def now_row(board: builders.Dashboard, layout: Layout) -> builders.Dashboard:
    """Each variant's req/s and CPU now, and what it runs."""
    board = board.with_row(layout.row("Now"))
    board = board.with_panel(
        bar_gauge(
            layout,
            "Server req/s now",
            "Replies per second each variant sends now (request-size filter applies). "
            "Talk, short requests only: threads about 25,000 req/s, coroutines 15,000 "
            "(about 17,000 for both on today's CPython); the process-pool variants far "
            "below (about a third: every request crosses a process boundary). With a "
            "long request running, threads fall about 100-fold, coro and asyncio with "
            "inline fib to 0, the pools hold.",
            "reqps",
            9,
        ).with_target(query(SERVER_RPS, "{{variant}}", "A", instant=True))
    )
    board = board.with_panel(
        bar_gauge(
            layout,
            "CPU cores used now",
            f"CPU of each variant's container now, against its limit of {CPU_LIMIT:g} cores. "
            "Talk: the GIL pins Python code to one core, so threads, coro and asyncio "
            "stay at or below about 1 core whatever the load; only the process-pool "
            "variants can use both cores.",
            "none",
            9,
        )
        .max(CPU_LIMIT)
        .thresholds(
            builders.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(None, "green"), models.Threshold(CPU_LIMIT, "red")])
        )
        .with_target(query(CPU_CORES, "{{variant}}", "A", instant=True))
    )
    info_id, info_pos = layout.place(6, 8)
    board = board.with_panel(
        table.Panel()
        .id(info_id)
        .grid_pos(info_pos)
        .title("What runs")
        .description(
            "Python version, implementation and GIL state of each variant (fib_info). "
            "The convoy effect the talk shows needs the GIL: on a free-threaded build "
            "(gil=disabled) threads should keep their short-request rate."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (variant, python, implementation, gil) (fib_info{{{VARIANT_MATCH}}})",
                "",
                "A",
                instant=True,
            ).format(PromQueryFormat.TABLE)
        )
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True, "Value": True}},
            )
        )
    )
    return board


def throughput_row(board: builders.Dashboard, layout: Layout) -> builders.Dashboard:
    """Server req/s by request size beside what Locust sends."""
    board = board.with_row(layout.row("Throughput"))
    board = board.with_panel(
        time_series(
            layout,
            "Server req/s by variant and request size",
            "Replies per second from each variant's own counter, one line per request "
            "size. Talk: fib(1) alone, threads ≈ 25,000 req/s (≈17,000 today), coroutines "
            "15,000; add one fib(40) client and threads fall to about 90 (150-200 today), "
            "coro with inline fib to 0, coro with a thread pool to about 29, the process "
            "pools are not affected.",
            "reqps",
            12,
        ).with_target(
            query(
                f"sum by (variant, n) ({rate('fib_requests_total', SIZED_MATCH)})",
                "{{variant}} fib({{n}})",
                "A",
            )
        )
    )
    board = board.with_panel(
        time_series(
            layout,
            "Load generator: req/s and users",
            "What Locust sends (left axis) and how many users it runs (right axis), per "
            "target variant. When its req/s is flat while the server's CPU is below the "
            "limit, the load generator, not the server, is the bottleneck (docs/design.md §5): "
            "the talk's perf2 client was a single Python loop too.",
            "reqps",
            12,
        )
        .with_target(
            query(
                f"sum by (variant) ({rate('locust_requests_total', LOCUST_SIZED_MATCH)})",
                "{{variant}} sent",
                "A",
            )
        )
        .with_target(
            query(f"sum by (variant) (locust_users{{{VARIANT_MATCH}}})", "{{variant}} users", "B")
        )
        .override_by_query(
            "B",
            [
                models.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                models.DynamicConfigValue(id_val="unit", value="none"),
                models.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot"}),
            ],
        )
    )
    return board


def latency_row(board: builders.Dashboard, layout: Layout) -> builders.Dashboard:
    """Server and client latency percentiles, on log axes."""
    board = board.with_row(layout.row("Latency"))
    quantiles = [("0.5", "p50"), ("0.99", "p99")]
    server_latency = log_axis(
        time_series(
            layout,
            "Server latency p50 / p99 (request line to reply)",
            "From the server's histogram: from a complete request line to its reply "
            "written. Talk: fib(30) takes about 0.33 s on 2015 hardware (about 0.045 s "
            "today); two long clients double it and three triple it on threads and on "
            "coroutines (one core), the process pools run them in parallel up to the "
            "cores they have. A short request's own time stays microseconds: the "
            "convoy's wait is mostly before the line is read, see the client's view.",
            "s",
            12,
        )
    )
    for ref_id, (q, label) in zip("AB", quantiles, strict=True):
        bucket = rate("fib_request_duration_seconds_bucket", SIZED_MATCH)
        server_latency = server_latency.with_target(
            query(
                f"histogram_quantile({q}, sum by (variant, n, le) ({bucket}))",
                f"{{{{variant}}}} fib({{{{n}}}}) {label}",
                ref_id,
            )
        )
    board = board.with_panel(dashed(server_latency, " p99", [10, 6]))
    client_latency = log_axis(
        time_series(
            layout,
            "Client latency p50 / p99 / p99.9 (Locust)",
            "Round trip as the load generator sees it, in microseconds resolution "
            "(the lab's own histogram, not Locust's statistics). Talk: a short "
            "request on threads waits for the GIL behind a long one (the convoy: about "
            "5 ms per hand-off), on coro and asyncio with inline fib it waits for the "
            "whole long request; on the process pools it barely moves.",
            "s",
            12,
        )
    )
    for ref_id, (q, label) in zip("ABC", [*quantiles, ("0.999", "p99.9")], strict=True):
        bucket = rate("locust_request_duration_seconds_bucket", LOCUST_SIZED_MATCH)
        client_latency = client_latency.with_target(
            query(
                f"histogram_quantile({q}, sum by (variant, name, le) ({bucket}))",
                f"{{{{variant}}}} {{{{name}}}} {label}",
                ref_id,
            )
        )
    client_latency = dashed(client_latency, " p99", [10, 6])
    board = board.with_panel(dashed(client_latency, " p99\\.9", [2, 4]))
    return board


def cpu_row(board: builders.Dashboard, layout: Layout) -> builders.Dashboard:
    """CPU cores against the limit, CPU per request, how busy the GIL is, and
    the resident memory of each variant's process tree."""
    board = board.with_row(layout.row("CPU and memory"))
    board = board.with_panel(
        time_series(
            layout,
            "CPU cores used vs the limit",
            f"CPU seconds per second of each variant's container (pool workers "
            f"included); the red line is the compose limit of {CPU_LIMIT:g} cores. Talk: "
            "the GIL keeps threads and coroutines to one core, so two fib(30) clients "
            "take twice as long; the process pools are the only variants that pass 1 core.",
            "none",
            12,
        )
        .axis_label("CPU cores")
        .axis_soft_min(0)
        .axis_soft_max(CPU_LIMIT * 1.1)
        .thresholds(
            builders.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(None, "transparent"), models.Threshold(CPU_LIMIT, "red")])
        )
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
        .with_target(query(CPU_CORES, "{{variant}}", "A"))
    )
    board = board.with_panel(
        time_series(
            layout,
            "CPU-seconds per request",
            "CPU of the variant divided by the replies it sent (all request sizes). "
            "Talk: the process pools pay for every request crossing to a worker and "
            "back (pickling, a pipe, a context switch), which is why their short-request "
            "rate is about a third of threads'; coroutines pay a little for select().",
            "s",
            12,
        ).with_target(
            query(
                f"{CPU_CORES} / sum by (variant) ({rate('fib_requests_total', VARIANT_MATCH)})",
                "{{variant}}",
                "A",
            )
        )
    )
    board = board.with_panel(gil_busy(layout, VARIANT_MATCH, 12))
    board = board.with_panel(
        time_series(
            layout,
            "Resident memory of the whole variant",
            "Resident memory (RSS) of each variant's process tree: the server process and "
            "every live descendant, pool and pre-fork workers included, each counted once "
            "(pages they share count in each, as in `ps`). A process pool holds an "
            "interpreter per worker; threads and coroutines hold one, plus a stack per "
            "thread or a frame per coroutine.",
            "bytes",
            12,
        )
        .axis_label("resident memory")
        .axis_soft_min(0)
        .with_target(
            query(
                f"sum by (variant) (fib_resident_memory_bytes{{{VARIANT_MATCH}}})",
                "{{variant}}",
                "A",
            )
        )
    )
    return board


def connections_row(board: builders.Dashboard, layout: Layout) -> builders.Dashboard:
    """Open and new connections, error replies."""
    board = board.with_row(layout.row("Connections and errors"))
    board = board.with_panel(
        time_series(
            layout,
            "Open connections and requests in flight",
            "Open client connections (solid) and request lines read but not yet "
            "answered (dotted). Talk: the sequential server serves one client at a time "
            "(the others wait in the listen backlog); a long request on coro with "
            "inline fib holds every other connection's request in flight.",
            "none",
            8,
        )
        .with_target(
            query(
                f"sum by (variant) (fib_connections_active{{{VARIANT_MATCH}}})",
                "{{variant}} connections",
                "A",
            )
        )
        .with_target(
            query(
                f"sum by (variant) (fib_requests_in_progress{{{VARIANT_MATCH}}})",
                "{{variant}} in flight",
                "B",
            )
        )
        .override_by_query(
            "B", [models.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot"})]
        )
    )
    board = board.with_panel(
        time_series(
            layout,
            "New connections per second",
            "Connections accepted per second. Locust users each hold one connection, so "
            "this is near 0 in a steady run; a rise means clients reconnect (a closed "
            "connection after `busy`, `idle-timeout` or `line-too-long`). The talk's "
            "perf clients also keep one connection each.",
            "cps",
            8,
        ).with_target(
            query(
                f"sum by (variant) ({rate('fib_connections_total', VARIANT_MATCH)})",
                "{{variant}}",
                "A",
            )
        )
    )
    board = board.with_panel(
        time_series(
            layout,
            "Error replies by code",
            "ERR replies per second by code (docs/design.md §2). The talk's servers had no error "
            "handling (a bad line killed the handler); here bad input gets an error "
            "reply and the server keeps serving. Expect 0 under the lab's load; "
            "server-error means a pool worker died.",
            "reqps",
            8,
        ).with_target(
            query(
                f"sum by (variant, code) ({rate('fib_errors_total', VARIANT_MATCH)})",
                "{{variant}} {{code}}",
                "A",
            )
        )
    )
    return board


def convoy_dashboard() -> builders.Dashboard:
    """The convoy: short-request rate per variant while long requests run."""
    layout = Layout()
    variants = 'variant=~"$variant"'
    short = f'variant=~"$variant", n=~"{SHORT_N}"'
    long = f'variant=~"$variant", n=~"{LONG_N}"'
    locust_short = f'variant=~"$variant", name=~"fib\\\\(({SHORT_N})\\\\)"'
    short_rps = f"sum by (variant) ({rate('fib_requests_total', short)})"

    board = dashboard(
        "fiblab: convoy",
        "fiblab-convoy",
        "The talk's convoy: steady short requests, then one long request joins. "
        "Red marks: a long request answered; blue marks: Locust's users changed "
        "(the long client joining or leaving).",
    )
    board = board.with_variable(variant_variable())
    board = board.annotation(long_request_annotation()).annotation(loadgen_annotation())

    board = board.with_panel(target_health(layout))
    board = board.with_panel(
        time_series(
            layout,
            "Short requests per second",
            "fib(n < 20) replies per second per variant. Start the convoy scenario in "
            "Locust (steady short load, then one long client): the talk's threaded "
            "server goes from 25,000 to about 90 req/s for as long as the long request "
            "runs (150-200 on today's CPython: about one short reply per 5 ms GIL "
            "switch interval), coro and asyncio with inline fib to 0, coro with a "
            "thread pool to about 29 (60-80 today); threads-procpool and the "
            "coro/asyncio process pools are not affected. sync serves one connection "
            "at a time: with Locust's persistent connections, one user only.",
            "reqps",
            24,
            10,
        ).with_target(query(short_rps, "{{variant}} short", "A"))
    )
    board = board.with_panel(
        log_axis(
            time_series(
                layout,
                "Short requests per second (log scale)",
                "The same rates on a log axis, to tell a collapse to about 100 req/s "
                "(threads: the GIL hands over every 5 ms) from a stop at 0 (coro and "
                "asyncio with inline fib: the only thread is busy in fib; a line "
                "disappears on a log axis at 0).",
                "reqps",
                12,
            )
        ).with_target(query(short_rps, "{{variant}} short", "A"))
    )
    board = board.with_panel(
        time_series(
            layout,
            "Long requests: seconds per request",
            "Mean time of a long request (n >= 20) from the server's histogram. Talk: "
            "fib(30) takes about 0.33 s alone (about 0.045 s today); with 2 and 3 long "
            "clients about 2x and 3x on threads and coroutines (the GIL, one core), not "
            "on the process pools until their workers outnumber the cores.",
            "s",
            12,
        ).with_target(
            query(
                f"sum by (variant) ({rate('fib_request_duration_seconds_sum', long)})"
                f" / sum by (variant) ({rate('fib_request_duration_seconds_count', long)})",
                "{{variant}} long",
                "A",
            )
        )
    )
    board = board.with_panel(
        time_series(
            layout,
            "Requests in flight",
            "Request lines read and not yet answered. A long request keeps this at 1 "
            "or more for its whole duration; on coro and asyncio with inline fib the "
            "short requests behind it pile up here too.",
            "none",
            8,
        ).with_target(
            query(
                f"sum by (variant) (fib_requests_in_progress{{{variants}}})",
                "{{variant}}",
                "A",
            )
        )
    )
    board = board.with_panel(
        time_series(
            layout,
            "CPU cores used",
            f"CPU of each variant's container (limit {CPU_LIMIT:g} cores). During the "
            "convoy threads and coroutines sit at about 1 core (the GIL), the process "
            "pools at up to 2: the long request on one core, the short ones on the other.",
            "none",
            8,
        )
        .axis_label("CPU cores")
        .axis_soft_min(0)
        .axis_soft_max(CPU_LIMIT * 1.1)
        .with_target(
            query(
                f"sum by (variant) ({rate('fib_cpu_seconds_total', variants)})",
                "{{variant}}",
                "A",
            )
        )
    )
    board = board.with_panel(
        log_axis(
            time_series(
                layout,
                "Client p99 latency of short requests (Locust)",
                "What a short-request client waits during the convoy. Talk: on threads "
                "each reply waits for a GIL hand-off (about 5 ms); on coro with inline "
                "fib for the whole long request; on the process pools it stays low.",
                "s",
                8,
            )
        ).with_target(
            query(
                "histogram_quantile(0.99, sum by (variant, le) "
                f"({rate('locust_request_duration_seconds_bucket', locust_short)}))",
                "{{variant}} short p99",
                "A",
            )
        )
    )
    board = board.with_panel(gil_busy(layout, variants, 24))
    return board


DASHBOARDS: dict[str, Callable[[], builders.Dashboard]] = {
    "fiblab-variants.json": variants_dashboard,
    "fiblab-convoy.json": convoy_dashboard,
}


def model(board: builders.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, with the Prometheus annotation fields added."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for annotation in data.get("annotations", {}).get("list", []):
        annotation.update({"step": "1s", "useValueForTime": False, "tagKeys": "variant"})
        annotation.update(ANNOTATION_EXTRAS.get(annotation["name"], {}))
    return data


def render(board: builders.Dashboard) -> str:
    return json.dumps(model(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name (in DASHBOARD_DIR) -> the JSON text that belongs there."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the lab's Grafana dashboards as JSON.")
    parser.add_argument(
        "--check", action="store_true", help="only report stale files; exit 1 if any"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = DASHBOARD_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        print("stale (run `make dashboards`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
