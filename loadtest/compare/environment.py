# loadtest/compare/environment.py
#
# summary.json's `environment` (docs/design.md §6, §6.2, §6.3): the run's
# settings, this interpreter, and the machine as it was before the first run.

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any

from loadtest.compare.plan import Plan
from loadtest.toolbox import machine


def environment(
    plan: Plan,
    target_kind: str,
    long_seconds: float,
    busy: machine.Busy = machine.NOT_SAMPLED,
    server_cpus: set[int] | None = None,
) -> dict[str, Any]:
    """The run's settings and machine; server_cpus: where the servers ran, if not plan's."""
    gil_check = getattr(sys, "_is_gil_enabled", None)
    return {
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "python_build": " ".join(platform.python_build()),
        "implementation": platform.python_implementation(),
        "gil": "enabled" if gil_check is None or gil_check() else "disabled",
        "switch_interval": sys.getswitchinterval(),
        "image": "fiblab-services:latest" if target_kind == "compose" else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "short_n": plan.short_n,
        "long_n": plan.long_n,
        "long_seconds_single": round(long_seconds, 3),
        "duration_s": plan.duration,
        "repeat": plan.repeat,
        "target": target_kind,
        "short_users": plan.short_users,
        "rate": plan.rate,
        "busy_cores_at_start": busy.cores,
        "load_average_at_start": busy.load,
        "noisy_threshold_cores": machine.NOISY_FOREIGN_CORES,
        "pinning": machine.pinning_record(server_cpus or plan.server_cpus, plan.loadgen_cpus),
    }
