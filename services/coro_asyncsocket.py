# services/coro_asyncsocket.py
#
# The talk's last step: wrap the socket so that each blocking call *is* a
# generator, and call it with `yield from`. The yields are hidden and the
# handler reads almost like the threaded one, while it still runs on the same
# scheduler, with fib() in a process pool. This is the shape that became
# `async`/`await`.

from __future__ import annotations

import socket
from collections.abc import Generator
from concurrent.futures import Executor
from typing import Any

from services.core.fib import fib
from services.core.pools import ProcessPool
from services.core.runtime import RECV_SIZE, Lab
from services.scheduler import Task, run, spawn

Wait = Generator[tuple[Any, ...], None, Any]


class AsyncSocket:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock

    def recv(self, maxsize: int, deadline: float | None = None) -> Wait:
        yield "recv", self.sock, deadline
        return self.sock.recv(maxsize)

    def sendall(self, data: bytes, deadline: float | None = None) -> Wait:
        while data:
            yield "send", self.sock, deadline
            data = data[self.sock.send(data) :]

    def accept(self, lab: Lab) -> Wait:
        yield "recv", self.sock
        client = lab.accept(self.sock)
        return client and AsyncSocket(client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def serve(lab: Lab, listener: socket.socket) -> None:
    spawn(fib_server(lab, AsyncSocket(listener), lab.traced(ProcessPool(lab.settings.workers))))
    run(lab)


def fib_server(lab: Lab, sock: AsyncSocket, pool: Executor) -> Task:
    while lab.accepting:
        if client := (yield from sock.accept(lab)):
            spawn(fib_handler(lab, client, pool))


def fib_handler(lab: Lab, client: AsyncSocket, pool: Executor) -> Task:
    with lab.connection(client.sock) as conn:
        while not conn.closed:
            data = yield from client.recv(RECV_SIZE, conn.deadline)
            for request in conn.receive(data):
                if request.n is not None:
                    request.future = future = pool.submit(fib, request.n)
                    yield "future", future
                reply = conn.reply(request)
                yield from client.sendall(reply, conn.deadline)
