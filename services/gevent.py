# services/gevent.py
#
# Beyond the talk: the talk's coroutines made implicit. gevent's sockets and
# its monkey-patched select make the blocking calls switch to another
# greenlet instead of blocking, so the `sync` handler, unchanged, serves
# every client at once: a greenlet per client, all in one thread, switched
# wherever a handler would block. fib() never blocks on a socket, so like
# `coro` a long request stops every client until it is done.

from __future__ import annotations

import socket
import time

import gevent
from gevent import monkey
from gevent import socket as gevent_socket
from gevent.pool import Group

from services.core.runtime import SIGNAL_CHECK, Lab
from services.sync import fib_handler


def serve(lab: Lab, listener: socket.socket) -> None:
    # The handler waits for input in select.poll (Connection.recv): patched,
    # that wait switches greenlets. The socket module is left alone: the
    # /metrics server's threads make sockets too, and a gevent socket can
    # only wait in the thread that made it. Ours are gevent's own.
    monkey.patch_select()
    listener = gevent_socket.socket(fileno=listener.detach())  # accept() gives gevent sockets
    listener.settimeout(SIGNAL_CHECK)
    lab.on_stop(lambda: listener.shutdown(socket.SHUT_RDWR))  # end a waiting accept()
    handlers = Group()
    while lab.accepting:
        if client := lab.accept(listener):
            # the talk's Thread(...).start(); between one client's lines, other greenlets run
            handlers.spawn(fib_handler, lab, client, pass_turn=gevent.idle)
    # Drain here, in the hub's thread: the caller's wait would block every greenlet.
    handlers.join(timeout=max(0.0, lab.drain_deadline - time.monotonic()))
