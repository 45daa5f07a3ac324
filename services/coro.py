# services/coro.py
#
# The talk's coroutines: no threads, one generator task per client, switched by
# the hand-written scheduler (services/scheduler.py) whenever a task would
# block. Every `yield` is a place where another client can run, and the only
# places: fib() runs inline, so while it computes nobody else is answered.

from __future__ import annotations

import socket

from services.core.fib import fib
from services.core.runtime import RECV_SIZE, Lab
from services.scheduler import Task, run, send_all, spawn


def serve(lab: Lab, listener: socket.socket) -> None:
    listener.setblocking(False)
    spawn(fib_server(lab, listener))
    run(lab)


def fib_server(lab: Lab, sock: socket.socket) -> Task:
    while lab.accepting:
        yield "recv", sock
        if client := lab.accept(sock):
            client.setblocking(False)
            spawn(fib_handler(lab, client))


def fib_handler(lab: Lab, client: socket.socket) -> Task:
    with lab.connection(client) as conn:
        while not conn.closed:
            yield "recv", client, conn.deadline
            for request in conn.receive(client.recv(RECV_SIZE)):
                reply = conn.reply(request, fib)  # fib(n) blocks the loop
                yield from send_all(client, reply, conn.deadline)
