# services/coro_threadpool.py
#
# The talk's attempt to keep the loop alive: hand fib() to a pool and park the
# task in `future_wait` (`yield 'future', future`) until the pool is done.
# With a pool of *threads* the work still needs the GIL, and the loop thread
# must win it back for every select, recv and send: the convoy returns, worse
# than with plain threads (the talk: 29 req/s against 90).

from __future__ import annotations

import socket
from concurrent.futures import Executor, ThreadPoolExecutor

from services.core.fib import fib
from services.core.runtime import RECV_SIZE, Lab
from services.scheduler import Task, run, send_all, spawn


def serve(lab: Lab, listener: socket.socket, pool: Executor | None = None) -> None:
    pool = pool or lab.traced(ThreadPoolExecutor(lab.settings.workers))
    listener.setblocking(False)
    spawn(fib_server(lab, listener, pool))
    run(lab)


def fib_server(lab: Lab, sock: socket.socket, pool: Executor) -> Task:
    while lab.accepting:
        yield "recv", sock
        if client := lab.accept(sock):
            client.setblocking(False)
            spawn(fib_handler(lab, client, pool))


def fib_handler(lab: Lab, client: socket.socket, pool: Executor) -> Task:
    with lab.connection(client) as conn:
        while not conn.closed:
            yield "recv", client, conn.deadline
            for request in conn.receive(client.recv(RECV_SIZE)):
                if request.n is not None:  # a valid line: fib goes to the pool
                    request.future = future = pool.submit(fib, request.n)
                    yield "future", future  # other clients run meanwhile
                reply = conn.reply(request)
                yield from send_all(client, reply, conn.deadline)
