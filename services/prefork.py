# services/prefork.py
#
# Beyond the talk: the oldest remedy for one GIL, a process per CPU
# (Apache's prefork, gunicorn, uWSGI). The server opens one listening socket;
# FIB_POOL_WORKERS processes (default: the CPUs available) each serve it with
# the talk's `threads` model, under a GIL of their own. A long request convoys
# only the clients whose connections its own process accepted; the others
# are served at full speed. This process supervises: it replaces a worker
# that dies and serves the /metrics of all of them (services/core/workers.py).

from __future__ import annotations

import socket

from services import threads
from services.core.runtime import Lab
from services.core.workers import Workers


def serve(lab: Lab, listener: socket.socket) -> None:
    workers = Workers(lab, listener, count=lab.settings.workers, serve=threads.serve)
    workers.run()  # each worker: threads.serve(its lab, the shared listener)
