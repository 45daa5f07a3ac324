# services/__main__.py
#
#   python -m services <variant> [--port P] [--metrics-port M] [...]
#
# Reads the settings, starts /metrics, listens, prints one line
# `listening on HOST:PORT` once clients can connect, and runs the variant
# until SIGTERM or Ctrl-C. Then it exits 0 within the drain timeout.

from __future__ import annotations

import importlib
import logging
import os
import sys

from services import VARIANTS, module_name
from services.core import pools
from services.core.metrics import Metrics
from services.core.runtime import Lab
from services.core.settings import parse_settings


def main(argv: list[str]) -> None:
    settings = parse_settings(argv, variants=VARIANTS)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {settings.variant} %(levelname)s %(message)s"
    )
    if settings.switch_interval:
        sys.setswitchinterval(settings.switch_interval)
    variant = importlib.import_module(module_name(settings.variant))
    lab = Lab(settings)
    try:
        listener = lab.listen()
        if isinstance(lab.metrics, Metrics):
            port = lab.metrics.serve(settings.host, settings.metrics_port)
            print(f"metrics on http://{settings.host}:{port}/metrics", flush=True)
    except OSError as error:
        sys.exit(f"cannot listen: {error}")
    lab.install_signal_handlers(listener)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    variant.serve(lab, listener)
    drained = lab.wait_closed()
    pools.shutdown_all()
    logging.getLogger("fiblab").info("stopped (%s)", "drained" if drained else "drain timed out")
    logging.shutdown()
    sys.stdout.flush()
    # Not sys.exit: that would join pool threads still running an abandoned
    # fib(45). Process-pool workers notice their server is gone and exit too.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
