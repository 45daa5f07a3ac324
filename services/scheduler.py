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
# - `yield 'recv', sock, deadline` (and 'send'): a line must arrive, and a
#   reply be written, before the deadline, or the task gets TimeoutError
#   thrown in (a trickling client, or one that never reads, cannot keep a
#   connection forever);
# - while the server drains, a reader with nothing left to read has reached
#   its deadline (docs/design.md §2);
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
deadlines: dict[socket.socket, float] = {}  # of the waits that have one

selector = selectors.DefaultSelector()
future_notify, future_event = socket.socketpair()
future_notify.setblocking(False)
future_event.setblocking(False)

DEADLINE_SCAN = 0.25  # seconds between checks of the deadlines


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


def send_all(sock: socket.socket, data: bytes, deadline: float | None = None) -> Task:
    while data:
        yield "send", sock, deadline
        data = data[sock.send(data) :]


def _wake_expired(lab: Lab, now: float) -> None:
    if lab.stopping.is_set():
        for sock in recv_wait.keys() & deadlines.keys():
            if lab.drained(sock):
                deadlines[sock] = now
    for sock, deadline in list(deadlines.items()):
        if deadline <= now:
            del deadlines[sock]
            selector.unregister(sock)
            waiting = recv_wait if sock in recv_wait else send_wait
            tasks.append((waiting.pop(sock), TimeoutError()))


def run(lab: Lab) -> None:
    spawn(future_monitor())
    next_scan = time.monotonic() + DEADLINE_SCAN
    # The monitor always waits somewhere: run while anything else does.
    while len(tasks) + len(recv_wait) + len(send_wait) + len(future_wait) > 1:
        if lab.stopping.is_set() and time.monotonic() > lab.drain_deadline:
            log.warning("drain deadline passed with %d tasks waiting", len(recv_wait))
            return
        if not tasks:
            timeout = max(0.0, next_scan - time.monotonic()) if deadlines else SIGNAL_CHECK
            if lab.stopping.is_set():
                timeout = min(timeout, DEADLINE_SCAN)
            for key, events in selector.select(timeout):
                sock = cast(socket.socket, key.fileobj)
                selector.unregister(sock)
                waiting = recv_wait if events & selectors.EVENT_READ else send_wait
                deadlines.pop(sock, None)
                tasks.append((waiting.pop(sock), None))
        if deadlines and (now := time.monotonic()) >= next_scan:
            _wake_expired(lab, now)
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
        if deadline and deadline[0] is not None:
            deadlines[what] = deadline[0]
        if why == "recv":
            recv_wait[what] = task
            selector.register(what, selectors.EVENT_READ)
        elif why == "send":
            send_wait[what] = task
            selector.register(what, selectors.EVENT_WRITE)
        elif why == "future":
            future_wait[what] = task
            what.add_done_callback(future_done)
        else:
            raise RuntimeError(f"a task yielded {why!r}")
