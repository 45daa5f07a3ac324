# services/coro_procpool.py
#
# The talk's fix, one line from the thread-pool version: the same scheduler and
# handler, with a pool of *processes*. fib() runs under other GILs, the loop
# keeps answering short requests while a long one computes.

from __future__ import annotations

import socket

from services import coro_threadpool
from services.core.pools import ProcessPool
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    coro_threadpool.serve(lab, listener, pool=lab.traced(ProcessPool(lab.settings.workers)))
