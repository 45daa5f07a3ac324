# tests/services/core/test_settings.py
#
# Settings (services/core/settings.py): docs/design.md §2 defaults, FIB_* environment
# variables, command-line flags overriding them, and bad values refused with
# exit code 2 and a message that names the variable or flag.

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields

import pytest

from services import VARIANTS
from services.core.settings import Settings, cpus_available, parse_settings
from tests.conftest import ROOT


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    return parse_settings(argv, environ or {}, VARIANTS)


def refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str] | None = None
) -> str:
    """The error message of settings that must not start a server."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv, environ)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults_per_design() -> None:
    settings = parse(["threads"])
    assert settings.variant == "threads"
    assert settings.port == 25000
    assert settings.metrics_port == 9100
    assert settings.max_n == 45
    assert settings.max_line == 64
    assert settings.idle_timeout == 300
    assert settings.max_connections == 1000
    assert settings.metrics is True
    # FIB_POOL_WORKERS defaults to the CPUs this process may use.
    assert settings.workers == cpus_available() == len(os.sched_getaffinity(0))


# field, environment variable, flag, a valid non-default text, its value
OPTIONS = [
    ("port", "FIB_PORT", "--port", "25005", 25005),
    ("metrics_port", "FIB_METRICS_PORT", "--metrics-port", "9200", 9200),
    ("max_n", "FIB_MAX_N", "--max-n", "30", 30),
    ("max_line", "FIB_MAX_LINE", "--max-line", "128", 128),
    ("idle_timeout", "FIB_IDLE_TIMEOUT", "--idle-timeout", "2.5", 2.5),
    ("max_connections", "FIB_MAX_CONNECTIONS", "--max-connections", "7", 7),
    ("pool_workers", "FIB_POOL_WORKERS", "--pool-workers", "3", 3),
    ("host", "FIB_HOST", "--host", "0.0.0.0", "0.0.0.0"),
    ("cpu_source", "FIB_CPU_SOURCE", "--cpu-source", "process", "process"),
]


@pytest.mark.parametrize(("field", "env", "flag", "text", "value"), OPTIONS)
def test_environment_then_flag(field: str, env: str, flag: str, text: str, value: object) -> None:
    assert getattr(parse(["threads"], {env: text}), field) == value
    assert getattr(parse(["threads", flag, text]), field) == value
    # The flag wins over the environment.
    default = getattr(parse(["threads"]), field)
    assert getattr(parse(["threads", flag, str(default)], {env: text}), field) == default


def test_help_shows_every_default_the_environment_included(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--help"], {"FIB_PORT": "25005"})
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    expected = {f.name: f.default for f in fields(Settings) if f.name not in ("variant", "metrics")}
    expected["port"] = 25005  # the environment's, not the built-in 25000
    for name, default in expected.items():
        flag, env = "--" + name.replace("_", "-"), f"FIB_{name.upper()}"
        shown = ("on" if default else "off") if isinstance(default, bool) else str(default)
        # The option, its help (no "[" in it), its variable, then its default.
        entry = rf"{flag} [A-Z_]+ [^[]*\[{env}\] \(default: {re.escape(shown)}\)"
        assert re.search(entry, text), f"{flag}: no default {default} in --help"
    assert "--no-metrics serve without instrumentation (default: metrics on)" in text


def test_pool_workers_setting_sets_workers() -> None:
    assert parse(["coro-procpool"], {"FIB_POOL_WORKERS": "5"}).workers == 5


def test_no_metrics_flag() -> None:
    assert parse(["threads", "--no-metrics"]).metrics is False


@pytest.mark.parametrize(
    ("env", "flag", "bad"),
    [
        ("FIB_PORT", "--port", "abc"),
        ("FIB_PORT", "--port", "70000"),
        ("FIB_PORT", "--port", "-1"),
        ("FIB_METRICS_PORT", "--metrics-port", "65536"),
        ("FIB_MAX_N", "--max-n", "-1"),
        ("FIB_MAX_N", "--max-n", "4.5"),
        ("FIB_MAX_LINE", "--max-line", "2"),
        ("FIB_IDLE_TIMEOUT", "--idle-timeout", "0"),
        ("FIB_IDLE_TIMEOUT", "--idle-timeout", "soon"),
        ("FIB_MAX_CONNECTIONS", "--max-connections", "0"),
        ("FIB_POOL_WORKERS", "--pool-workers", "-2"),
        ("FIB_CPU_SOURCE", "--cpu-source", "gpu"),
    ],
)
def test_bad_values_name_the_variable_or_flag(
    capsys: pytest.CaptureFixture[str], env: str, flag: str, bad: str
) -> None:
    message = refused(capsys, ["threads"], {env: bad})
    assert env in message
    assert bad in message
    message = refused(capsys, ["threads", flag, bad])
    assert flag in message
    assert bad in message


def test_unknown_variant_refused(capsys: pytest.CaptureFixture[str]) -> None:
    message = refused(capsys, ["fibers"])
    assert "fibers" in message
    assert "threads" in message  # lists what exists
    assert "variant" in refused(capsys, [])


def test_unknown_flag_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--workers" in refused(capsys, ["threads", "--workers", "2"])


def test_command_line_exit_code() -> None:
    # The real entry point, as a container would run it: nothing starts.
    result = subprocess.run(
        [sys.executable, "-m", "services", "threads", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "FIB_MAX_N": "lots"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "FIB_MAX_N='lots'" in result.stderr
    assert "listening" not in result.stdout
