# loadtest/timeline/record.py
#
# One timeline: the variant runs in the variants image on CPython 3.15
# under the GIL sampler (services/sampler.py), with the server's own
# timeline on (FIB_TIMELINE, services/core/timeline.py); the convoy client
# (client.py) runs here. Their three records, on one clock, become one
# recording.json.gz: the only input of the trace and the picture (draw.py).

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.timeline.client import convoy
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import local_variant, wait_until_answering

SCHEMA = 1
IN_CONTAINER = "/timeline"  # where the recording folder is mounted
MARGIN = 0.05  # seconds of samples kept either side of the client's window
RECORDING = "recording.json.gz"


@dataclass(frozen=True)
class Recipe:
    """What one timeline records (the command's options)."""

    long_n: int = 34
    short_n: int = 1
    short_clients: int = 0  # 0: one, or two per process on prefork
    before: float = 0.25
    after: float = 0.25
    rate: float = 1000.0
    switch_interval: float = 0.0  # 0: CPython's default
    long_timeout: float = 20.0

    def clients_for(self, variant: str, workers: int) -> int:
        if self.short_clients:
            return self.short_clients
        return 2 * workers if variant == "prefork" else 1


def record(
    variant: str, folder: Path, image: str | None, recipe: Recipe, workers: int = 2,
    server_flags: Sequence[str] = (),
) -> Path:  # fmt: skip
    """Record `variant`'s convoy into folder/recording.json.gz; its path.
    In `image` (CPython 3.15), under the GIL sampler; with no image, here on
    this Python, with the server's and the client's records only (no GIL
    states: the switch-interval sweep's use)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("timeline-*.json"), folder / "samples.json"]:
        stale.unlink(missing_ok=True)
    where = IN_CONTAINER if image else str(folder.resolve())
    flags = [
        "--timeline", where, "--pool-workers", str(workers), *server_flags,
        *(["--switch-interval", f"{recipe.switch_interval:g}"] if recipe.switch_interval else []),
    ]  # fmt: skip
    wrapper: list[str] = []
    docker_options: list[str] = []
    if image is not None:
        keep = recipe.before + recipe.long_timeout + recipe.after + 10  # the run, and its start
        wrapper = ["-m", "services.sampler", "--out", f"{IN_CONTAINER}/samples.json",
                   "--rate", f"{recipe.rate:g}", "--keep", f"{keep:g}"]  # fmt: skip
        docker_options = [
            # The sampler reads the server's memory (process_vm_readv), which
            # Docker's seccomp profile allows only with this capability: added
            # to this one measuring container, never to the lab's services.
            "--cap-add", "SYS_PTRACE",
            "--user", f"{os.getuid()}:{os.getgid()}",
            "--volume", f"{folder.resolve()}:{IN_CONTAINER}",
        ]  # fmt: skip
    with local_variant(
        variant, flags, image=image, wrapper=wrapper, docker_options=docker_options
    ) as target:
        wait_until_answering(target)
        connections = convoy(
            target.host, target.port,
            short_clients=recipe.clients_for(variant, workers), short_n=recipe.short_n,
            long_n=recipe.long_n, before=recipe.before, after=recipe.after,
            long_timeout=recipe.long_timeout,
        )  # fmt: skip
    return _assemble(variant, folder, image, recipe, connections)


def _assemble(
    variant: str, folder: Path, image: str | None, recipe: Recipe, connections: list[dict[str, Any]]
) -> Path:
    processes = [json.loads(path.read_text("utf-8")) for path in folder.glob("timeline-*.json")]
    if not processes:
        raise LabError(f"{variant} wrote no timeline into {folder} (did it start with it on?)")
    samples: dict[str, Any]
    if image is None:  # no sampler: an empty sample record, this Python's version
        samples = {"python": sys.version.split()[0], "rate": 0, "status_flags": {}, "taken": 0,
                   "failed": 0, "seconds_reading": 0.0, "sweeps": []}  # fmt: skip
    else:
        try:
            samples = json.loads((folder / "samples.json").read_text("utf-8"))
        except FileNotFoundError:
            raise LabError(f"the GIL sampler wrote nothing into {folder}") from None
    times = [t for c in connections for request in c["requests"] for t in request]
    start, end = min(times) - MARGIN, max(times) + MARGIN
    samples["sweeps"] = [sweep for sweep in samples["sweeps"] if start <= sweep[0] <= end]
    ports = {connection["port"] for connection in connections}
    for process in processes:  # the health check's request came before: not in the picture
        process["events"] = [
            event for event in process["events"]
            if (event[0] == "connection" and event[5] in ports)  # accepted before the first send
            or (event[4] >= min(times) and event[3] <= end)
        ]  # fmt: skip
    recording = {
        "schema": SCHEMA,
        "variant": variant,
        "image": image,
        "python": samples["python"],
        "recipe": recipe.__dict__,
        "window": [start, end],  # what the picture spans
        "client_window": [min(times), max(times)],  # the first send to the last reply
        "client": connections,
        "server": sorted(processes, key=lambda process: process["pid"]),
        "samples": samples,
    }
    for path in [*folder.glob("timeline-*.json"), folder / "samples.json"]:
        path.unlink(missing_ok=True)
    path = folder / RECORDING
    path.write_bytes(gzip.compress(json.dumps(recording).encode(), mtime=0))
    return path


def load(path: Path) -> dict[str, Any]:
    recording: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    if recording.get("schema") != SCHEMA:
        raise LabError(f"{path}: not a timeline recording of schema {SCHEMA}")
    return recording


def digest(path: Path) -> str:
    """What a picture names as its input: the recording's sha256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
