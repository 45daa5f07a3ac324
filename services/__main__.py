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

from services import PYTHON_NEEDED, VARIANTS, module_name
from services.core import pools
from services.core.metrics import Metrics
from services.core.runtime import Lab, fit_open_file_limit
from services.core.settings import Settings, env_var, flag, parse_settings


def main(argv: list[str]) -> None:
    settings = parse_settings(argv, variants=VARIANTS)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {settings.variant} %(levelname)s %(message)s"
    )
    if (needed := PYTHON_NEEDED.get(settings.variant)) and sys.version_info < needed:
        sys.exit(
            f"{settings.variant} needs Python {needed[0]}.{needed[1]} or later"
            f" (this is {sys.version.split()[0]}): its container runs it"
            f" (docker compose up {settings.variant})"
        )
    if settings.switch_interval:
        sys.setswitchinterval(settings.switch_interval)
    variant = importlib.import_module(module_name(settings.variant))
    settings = fit_open_file_limit(settings)
    lab = Lab(settings)
    try:
        listener = lab.listen()
    except OSError as error:
        sys.exit(cannot_listen("the line protocol", settings, "port", error))
    if isinstance(lab.metrics, Metrics):
        try:
            port = lab.metrics.serve(settings.host, settings.metrics_port)
        except OSError as error:
            sys.exit(cannot_listen("/metrics", settings, "metrics_port", error))
        print(f"metrics on http://{settings.host}:{port}/metrics", flush=True)
    lab.install_signal_handlers(listener)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    variant.serve(lab, listener)
    drained = lab.wait_closed()
    pools.shutdown_all()
    lab.save_timeline()
    logging.getLogger("fiblab").info("stopped (%s)", "drained" if drained else "drain timed out")
    logging.shutdown()
    sys.stdout.flush()
    # Not sys.exit: that would join pool threads still running an abandoned
    # fib(45). Process-pool workers notice their server is gone and exit too.
    os._exit(0)


def cannot_listen(what: str, settings: Settings, port_setting: str, error: OSError) -> str:
    """The exit message: which address failed, why, and the setting to change."""
    address = f"{settings.host}:{getattr(settings, port_setting)}"
    errno = error.errno or 0
    if errno < 0:  # getaddrinfo's codes are negative: the host does not resolve
        setting, reason = "host", str(error)
    else:  # rebuilt: socket.create_server's message repeats the address
        setting, reason = port_setting, f"[Errno {errno}] {os.strerror(errno)}"
    return (
        f"cannot listen for {what} on {address}: {reason}"
        f" (choose another with {flag(setting)} or {env_var(setting)})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
