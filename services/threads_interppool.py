# services/threads_interppool.py
#
# Beyond the talk: the talk's remedy without processes. The same thread per
# client as `threads`, but fib() runs in a pool of subinterpreters (PEP 684,
# PEP 734; CPython 3.14), each with a GIL of its own, in this one process.
# Like a process pool, a long request no longer starves the short ones; a
# call crosses into another interpreter, not into another process.

from __future__ import annotations

import socket

from services import threads
from services.core.fib import fib
from services.core.pools import interpreter_pool
from services.core.runtime import Lab


def serve(lab: Lab, listener: socket.socket) -> None:
    pool = lab.traced(interpreter_pool(lab.settings.workers))
    threads.serve(lab, listener, compute=lambda n: pool.submit(fib, n).result())
