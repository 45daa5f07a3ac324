# services/scheduler.py
#
# The talk's hand-written scheduler for generator tasks, in its own words:
# a task is a generator that yields *why* it would block,
#
#     yield 'recv', sock            # wait until sock is readable
#     yield 'send', sock            # wait until sock is writable
#     yield 'future', future        # wait until a pool has finished
#
# and the scheduler parks it in a waiting area (recv_wait, send_wait,
# future_wait) until that is true, running the ready ones from `tasks` in
# turn. A pool's callback runs in another thread and cannot wake select(),
# so it writes a byte to `future_notify`; a permanent task reading the other
# end (`future_event`) is what wakes the loop.
#
# Changes from the talk, each for a reason:
# - selectors (epoll) instead of select(), which stops at fd 1024;
# - `yield 'recv', sock, deadline`: a line must arrive before its deadline,
#   or the task gets TimeoutError thrown in (a trickling client cannot keep
#   a connection forever);
# - a task that raises is logged and dropped: one bad client must not stop
#   the loop for everybody;
# - run() returns once the server stops and its clients are done.

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any, cast

from services.core.runtime import SIGNAL_CHECK, Lab

log = logging.getLogger("fiblab")

Task = Generator[tuple[Any, ...], None, Any]

tasks: deque[tuple[Task, BaseException | None]] = deque()  # ready to run
recv_wait: dict[socket.socket, Task] = {}  # waiting areas
send_wait: dict[socket.socket, Task] = {}
future_wait: dict[Future[Any], Task] = {}
recv_deadline: dict[socket.socket, float] = {}

selector = selectors.DefaultSelector()
future_notify, future_event = socket.socketpair()
future_notify.setblocking(False)
future_event.setblocking(False)

DEADLINE_SCAN = 0.25  # seconds between checks of the recv deadlines


def spawn(task: Task) -> None:
    tasks.append((task, None))


def future_done(future: Future[Any]) -> None:
    """Done-callback: runs in the pool's thread, so it must wake select()."""
    tasks.append((future_wait.pop(future), None))
    try:
        future_notify.send(b"x")
    except BlockingIOError:  # a wake-up byte is already pending: one is enough
        pass


def future_monitor() -> Task:
    while True:
        yield "recv", future_event
        try:
            while future_event.recv(4096):
                pass
        except BlockingIOError:
            pass


def send_all(sock: socket.socket, data: bytes) -> Task:
    while data:
        yield "send", sock
        data = data[sock.send(data) :]


def _wake_expired(now: float) -> None:
    for sock, deadline in list(recv_deadline.items()):
        if deadline <= now:
            del recv_deadline[sock]
            selector.unregister(sock)
            tasks.append((recv_wait.pop(sock), TimeoutError()))


def run(lab: Lab) -> None:
    spawn(future_monitor())
    next_scan = time.monotonic() + DEADLINE_SCAN
    # The monitor always waits somewhere: run while anything else does.
    while len(tasks) + len(recv_wait) + len(send_wait) + len(future_wait) > 1:
        if lab.stopping.is_set() and time.monotonic() > lab.drain_deadline:
            log.warning("drain deadline passed with %d tasks waiting", len(recv_wait))
            return
        if not tasks:
            timeout = max(0.0, next_scan - time.monotonic()) if recv_deadline else SIGNAL_CHECK
            if lab.stopping.is_set():
                timeout = min(timeout, DEADLINE_SCAN)
            for key, events in selector.select(timeout):
                sock = cast(socket.socket, key.fileobj)
                selector.unregister(sock)
                waiting = recv_wait if events & selectors.EVENT_READ else send_wait
                recv_deadline.pop(sock, None)
                tasks.append((waiting.pop(sock), None))
        if recv_deadline and (now := time.monotonic()) >= next_scan:
            _wake_expired(now)
            next_scan = now + DEADLINE_SCAN
        if not tasks:
            continue
        task, error = tasks.popleft()
        try:
            why, what, *deadline = task.throw(error) if error else next(task)
        except StopIteration:
            continue
        except Exception:
            log.exception("task crashed")
            continue
        if why == "recv":
            recv_wait[what] = task
            selector.register(what, selectors.EVENT_READ)
            if deadline and deadline[0] is not None:
                recv_deadline[what] = deadline[0]
        elif why == "send":
            send_wait[what] = task
            selector.register(what, selectors.EVENT_WRITE)
        elif why == "future":
            future_wait[what] = task
            what.add_done_callback(future_done)
        else:
            raise RuntimeError(f"a task yielded {why!r}")
