# tests/services/test_lifecycle.py
#
# The lifecycle and fault part of the conformance suite (docs/design.md §2): what a
# server does when it is told to stop, when it or its pool workers are
# killed, when clients vanish, and when thousands of clients stay connected.
# Every variant runs as a real subprocess in its own process group; every
# socket has a timeout and every wait a deadline; every server started here
# is killed with its whole group in teardown.

from __future__ import annotations

import ctypes
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import (
    CHILD_PROCESS_VARIANTS,
    EVENT_LOOP_VARIANTS,
    POOL_VARIANTS,
    ROOT,
    Server,
    answer,
    cmdline,
    cpu_ticks,
    group_cpu_seconds,
    group_members,
    kill_group,
    pool_workers,
    read_line,
    reply_pending,
    server_command,
    thread_count,
    wait_for,
    wait_in_progress,
)

# fib(32) takes about 0.3 s here, fib(34) 0.7 s and fib(38) about 4.5 s.
SHORT_WORK = 32  # long enough to disconnect before the reply
LONG_WORK = 34  # outlasts a SIGTERM round trip by a wide margin
# ...except where fib runs in a thread beside the loop: the loop wins the
# GIL back once per switch interval, so its SIGTERM round trip (close the
# listener, turn a new client away) takes many intervals, over a second
# under the parallel test pass: fib(38), about seven times fib(34).
GIL_SHARING_POOLS = ("coro-threadpool", "asyncio-tothread")
KILL_WORK = 35  # still computing when its worker is killed
HOG_WORK = 38  # far longer than a worker may outlive its server

# Variants that hear SIGTERM on an asyncio loop (loop.add_signal_handler)
# and run fib on that same loop: the signal waits until fib returns.
SIGNAL_WAITS_FOR_FIB = ("asyncio", "asyncio-uvloop")

MANY_CONNECTIONS = 2000


# -- helpers ---------------------------------------------------------------


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the client vanishes at once."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def probe(port: int) -> str:
    """Try a new client: "refused", "unserved" (closed without a reply) or "served"."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except ConnectionError:  # refused, or reset while the listener shut down
        return "refused"
    with sock:
        sock.settimeout(3)
        try:
            sock.sendall(b"1\n")
            reply = read_line(sock)
        except ConnectionError:
            return "unserved"
        except TimeoutError:
            pytest.fail("a new connection after SIGTERM was neither served nor closed in 3 s")
    return "unserved" if reply == b"" else "served"


def busiest(pids: list[int], interval: float = 0.3) -> int:
    """The process among `pids` that used the most CPU over `interval` s."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(interval)
    used = {pid: cpu_ticks(pid) - ticks for pid, ticks in before.items()}
    pid = max(used, key=lambda p: used[p])
    assert used[pid] > 0, f"no pool worker is computing: {used}"
    return pid


def describe(pids: list[int]) -> str:
    return "; ".join(f"{pid}: {cmdline(pid)}" for pid in pids) or "none"


def group_empties(pgid: int, timeout: float = 5.0) -> None:
    wait_for(
        lambda: not group_members(pgid),
        timeout,
        f"process group {pgid} empty (left: {describe(group_members(pgid))})",
    )


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def exchange(socks: list[socket.socket], line: bytes, timeout: float = 10.0) -> list[bytes]:
    """Send `line` on every socket, then read one reply line from each, all at once."""
    for sock in socks:
        sock.sendall(line)
    by_fd = {sock.fileno(): sock for sock in socks}
    replies = {fd: bytearray() for fd in by_fd}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        pending = len(socks)
        while pending and (left := deadline - time.monotonic()) > 0:
            for key, _events in selector.select(left):
                data = by_fd[key.fd].recv(64)
                replies[key.fd] += data
                if not data or data.endswith(b"\n"):
                    selector.unregister(key.fd)
                    pending -= 1
    return [bytes(replies[sock.fileno()]) for sock in socks]


# -- SIGTERM -----------------------------------------------------------------


def test_sigterm_answers_request_in_flight_stops_accepting_and_exits(variant, launch):
    # The drain's deadline is not what is probed: fib(38) beside a loop, in
    # the parallel pass, once outlasted the default 8 s and lost its reply.
    server = launch(variant, "--drain-timeout", "60")
    long_work = LONG_WORK + 4 if variant in GIL_SHARING_POOLS else LONG_WORK
    with server.connect(timeout=15) as client:
        client.sendall(b"%d\n" % long_work)
        wait_in_progress(server)
        os.kill(server.pid, signal.SIGTERM)
        # A client that connects before the server has heard the signal is
        # served from the backlog (docs/design.md §2): probe once it has.
        wait_for(lambda: "stopping: " in "".join(server.output), 10, "the server heard SIGTERM")

        # New clients are turned away (refused, or closed unanswered) while
        # the request already read is still being worked on.
        deadline = time.monotonic() + 5
        outcomes = [probe(server.port)]
        while outcomes[-1] == "served" and time.monotonic() < deadline:
            time.sleep(0.02)
            outcomes.append(probe(server.port))
        assert outcomes[-1] != "served", f"still accepting 5 s after SIGTERM: {outcomes}"
        if variant not in SIGNAL_WAITS_FOR_FIB:
            assert reply_pending(client), f"stopped accepting only after the reply: {outcomes}"

        assert read_line(client) == answer(long_work)
        assert read_line(client) == b"", "the connection is closed once its work is done"
    try:
        code = server.process.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{variant} still running 10 s after SIGTERM:\n{''.join(server.output)}")
    assert code == 0, server.all_output()
    group_empties(server.pid)


# The drain probe (docs/design.md §2, SIGTERM): clients that pipelined a batch
# just before the signal and keep sending after it.
PROBE_CLIENTS = 4  # more than a pool's workers: some wait, on `sync` in the backlog
PROBE_LINES = 128  # fib(22) each, about 2.5 ms: a batch would hold a loop 0.3 s
PROBE_N = 22
SIGTERM_AFTER = 0.1  # seconds after the batches: in the middle of them
# Seconds after SIGTERM to the first line the server must not answer: it
# hears the signal within about one request (FIB_YIELD_EVERY), or, where
# threads of the same interpreter compute fib while the signal's thread
# waits for the GIL, within some switch intervals: that thread queues
# behind them (the convoy; once over 0.1 s on `threads` in CI).
TRICKLE_AFTER = 0.1
TRICKLE_AFTER_GIL_QUEUE = 0.5
GIL_QUEUE_AT_SIGTERM = ("threads", "prefork", *GIL_SHARING_POOLS)
TRICKLE_EVERY = 0.01


def trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """`1\n` on every connection every TRICKLE_EVERY s, until told or refused."""
    while not stop.wait(TRICKLE_EVERY):
        for sock in socks:
            try:
                sock.send(b"1\n")
            except OSError:  # closed by the server, which has ended it: fine
                pass


def read_to_eof(sock: socket.socket, deadline: float) -> tuple[list[bytes], str]:
    """Every reply line up to the server's EOF, and how it ended: "eof", "reset" or "timeout"."""
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data.split(b"\n")[:-1], "reset"
        except TimeoutError:
            break
        if not chunk:
            return data.split(b"\n")[:-1], "eof"
        data += chunk
    return data.split(b"\n")[:-1], "timeout"


@pytest.mark.serial  # how soon the signal is heard is timed: other tests' load would skew it
def test_sigterm_answers_exactly_the_lines_received_before_it(variant, launch):
    """The batches received before SIGTERM are answered in full, on every
    connection, those in the backlog included; no line sent after it is; each
    connection ends with EOF, not a reset. An event loop that answered a
    whole read before looking at the signal answered the lines that kept
    coming meanwhile; one that closed its listener with connections in its
    backlog reset them."""
    # Neither the drain's deadline nor the linger's is what is probed, and a
    # loaded machine may take long: the connections are read one after
    # another while the trickle goes on, and a lingering close that timed out
    # with a trickled line unread reset a connection not yet read (once, on
    # threads, after 5,928 of its replies).
    server = launch(variant, "--drain-timeout", "60", "--linger-timeout", "60")
    socks = [server.connect(timeout=15) for _ in range(PROBE_CLIENTS)]
    stop_trickle = threading.Event()
    try:
        for sock in socks:
            sock.sendall(b"%d\n" % PROBE_N * PROBE_LINES)
        time.sleep(SIGTERM_AFTER)
        os.kill(server.pid, signal.SIGTERM)
        time.sleep(TRICKLE_AFTER_GIL_QUEUE if variant in GIL_QUEUE_AT_SIGTERM else TRICKLE_AFTER)
        threading.Thread(target=trickle, args=(socks, stop_trickle), daemon=True).start()
        deadline = time.monotonic() + 60
        endings = [read_to_eof(sock, deadline) for sock in socks]
    finally:
        stop_trickle.set()
        for sock in socks:
            sock.close()
    expected = answer(PROBE_N).rstrip(b"\n")
    for number, (lines, how) in enumerate(endings, 1):
        assert how == "eof", f"connection {number}: {how} after {len(lines)} replies"
        late = [line for line in lines if line != expected]
        assert not late, f"connection {number}: lines sent after SIGTERM answered: {late[:5]}"
        assert len(lines) == PROBE_LINES, f"connection {number}: {len(lines)} replies"
    assert server.process.wait(15) == 0, server.all_output()


def test_sigterm_received_by_another_thread_still_stops_the_server(variant, launch):
    """The kernel may hand a process's SIGTERM to any of its threads (valgrind
    often does); Python runs the handler in the main thread, which must not
    sleep through it in accept() or select()."""
    server = launch(variant)
    others = [int(tid) for tid in os.listdir(f"/proc/{server.pid}/task") if int(tid) != server.pid]
    assert others, "every variant has a thread besides the main one: /metrics"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(server.pid, others[0], signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")
    try:
        code = server.process.wait(5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{variant} still running 5 s after a thread got SIGTERM")
    assert code == 0, server.all_output()


# -- SIGKILL -----------------------------------------------------------------


def test_sigkill_of_process_group_leaves_nothing(variant, launch):
    server = launch(variant)
    if variant in CHILD_PROCESS_VARIANTS:
        assert pool_workers(server), "a pool or pre-fork variant starts its workers up front"
    else:
        # Also keeps CHILD_PROCESS_VARIANTS honest: a new variant with children must join it.
        assert server.descendants() == [], describe(server.descendants())
    kill_group(server.pid)
    assert server.process.wait(5) == -signal.SIGKILL
    group_empties(server.pid)


@pytest.mark.parametrize("variant", CHILD_PROCESS_VARIANTS)
def test_pool_workers_exit_when_server_alone_is_sigkilled(variant, launch):
    server = launch(variant)
    workers = pool_workers(server)
    assert workers
    with server.connect() as client:
        # A worker busy with seconds of work must not finish it first.
        client.sendall(b"%d\n" % HOG_WORK)
        wait_in_progress(server)
        os.kill(server.pid, signal.SIGKILL)  # the server only: no group kill
        assert server.process.wait(5) == -signal.SIGKILL
        group_empties(server.pid, timeout=3)


# -- many connections --------------------------------------------------------


@pytest.fixture
def fd_limit() -> Iterator[int]:
    """Raise RLIMIT_NOFILE (a server started afterwards inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * MANY_CONNECTIONS + 200  # the clients here and the server's ends
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}: cannot open enough sockets")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
@pytest.mark.parametrize("variant", EVENT_LOOP_VARIANTS)
def test_event_loop_holds_thousands_of_connections(variant, launch, fd_limit):
    # select() stops at fd 1024: these must wait with epoll (selectors/asyncio).
    server = launch(variant, "--max-connections", "3000")
    socks: list[socket.socket] = []
    try:
        for _batch in range(0, MANY_CONNECTIONS, 250):  # each batch answered before the next
            batch = [server.connect(timeout=10) for _ in range(250)]
            socks += batch
            replies = exchange(batch, b"10\n")
            assert replies == [b"55\n"] * len(batch), set(replies)
        assert server.metric("fib_connections_active") == MANY_CONNECTIONS
        assert server.metric("fib_connections_total") == MANY_CONNECTIONS + 1  # + readiness
        replies = exchange(socks, b"10\n", timeout=15)  # every client at once
        assert replies.count(b"55\n") == MANY_CONNECTIONS, set(replies)
        assert max(sock.fileno() for sock in socks) > 1024
    finally:
        for sock in socks:
            sock.close()
    wait_for(
        lambda: server.metric("fib_connections_active") == 0, 10, "fib_connections_active == 0"
    )
    assert server.ask(b"10\n") == b"55\n"


# -- a pool worker dies --------------------------------------------------------


@pytest.mark.parametrize("variant", POOL_VARIANTS)
def test_killed_pool_worker_costs_its_request_only(variant, launch):
    server = launch(variant)
    with server.connect(timeout=15) as client:
        client.sendall(b"%d\n" % KILL_WORK)
        wait_in_progress(server)
        victim = busiest(pool_workers(server))
        os.kill(victim, signal.SIGKILL)
        reply = read_line(client)
        assert reply == answer(KILL_WORK) or reply.startswith(b"ERR server-error "), reply
        # The same connection stays open and usable.
        client.sendall(b"20\n")
        assert read_line(client) == b"6765\n"
        client.sendall(b"20\n21\n")
        assert read_line(client) + read_line(client) == b"6765\n10946\n"
    assert server.ask(b"20\n") == b"6765\n"  # and a new one
    assert server.process.poll() is None, "the server itself survives"
    assert victim not in group_members(server.pid)
    assert pool_workers(server), "the pool was replaced"
    if reply.startswith(b"ERR"):
        assert server.metric("fib_errors_total", code="server-error") == 1
    # The replaced pool still shuts down cleanly.
    assert server.stop(signal.SIGTERM) == 0, server.all_output()
    group_empties(server.pid)


def test_killed_prefork_worker_costs_its_own_connections_only(launch):
    """A pre-fork worker killed mid-request: the clients it served lose their
    connections, every other client keeps its own, and a new worker takes
    its place; what the dead worker counted stays counted."""
    server = launch("prefork", "--pool-workers", "2")
    workers = pool_workers(server)
    assert len(workers) == 2, describe(server.descendants())
    # The long request first: its process's accept thread then waits for its
    # GIL, so the idle process takes the connections that follow (a burst of
    # connections to two idle workers may all land on one).
    clients = [server.connect(timeout=15)]
    clients[0].sendall(b"%d\n" % KILL_WORK)
    wait_in_progress(server)
    victim = busiest(workers)
    clients += [server.connect(timeout=15) for _ in range(7)]
    try:
        for client in clients[1:]:
            client.sendall(b"20\n")
            assert read_line(client) == b"6765\n"
        wait_for(lambda: server.metric("fib_requests_total", n="20", outcome="ok") == 7, 5,
                 "7 fib(20) counted")  # fmt: skip
        os.kill(victim, signal.SIGKILL)
        assert read_line(clients[0]) == b"", "its connection ends with its process"
        survivors = 0
        for client in clients[1:]:
            try:
                client.sendall(b"20\n")
                reply = read_line(client)
            except OSError:
                continue  # it was on the same process
            assert reply in (b"6765\n", b""), reply
            survivors += reply == b"6765\n"
        assert survivors >= 1, "every connection was on the killed worker"
        wait_for(lambda: len(pool_workers(server)) == 2, 15, "a new worker replaces it")
        assert victim not in pool_workers(server)
        assert server.ask(b"20\n") == b"6765\n"
        counted = server.metric("fib_requests_total", n="20", outcome="ok")
        assert counted >= 7 + survivors + 1, "the dead worker's counts are kept"
    finally:
        for client in clients:
            client.close()
    assert server.stop(signal.SIGTERM) == 0, server.all_output()
    group_empties(server.pid)


# -- clients that vanish -------------------------------------------------------


def test_client_vanishing_mid_request_costs_nothing(variant, launch):
    server = launch(variant)
    wait_for(lambda: server.metric("fib_connections_active") == 0, 5, "readiness client closed")
    fds = fd_count(server.pid)

    client = server.connect()
    client.sendall(b"%d\n" % SHORT_WORK)
    wait_in_progress(server)
    reset(client)  # gone before its reply
    assert server.ask(b"10\n", timeout=15) == b"55\n"
    wait_for(
        lambda: server.metric("fib_connections_active") == 0, 10, "fib_connections_active == 0"
    )
    wait_for(
        lambda: server.metric("fib_requests_in_progress") == 0, 10, "fib_requests_in_progress == 0"
    )

    # No fd left behind by a connection, however it ends.
    for i in range(200):
        with server.connect() as sock:
            sock.sendall(b"1\n")
            if i % 2:
                assert read_line(sock) == b"1\n"
            else:
                reset(sock)  # before or after its reply: either way
    assert server.ask(b"10\n") == b"55\n"
    wait_for(
        lambda: server.metric("fib_connections_active") == 0, 10, "fib_connections_active == 0"
    )
    wait_for(lambda: fd_count(server.pid) <= fds + 2, 5, f"fd count back to {fds} (+2)")
    assert server.process.poll() is None


# -- ports already taken -------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "other"),
    [
        pytest.param("--port", "FIB_PORT", "--metrics-port", id="port"),
        pytest.param("--metrics-port", "FIB_METRICS_PORT", "--port", id="metrics_port"),
    ],
)
def test_taken_port_names_its_address_and_setting(variant, flag, env, other):
    """A port another process holds: the server exits non-zero before serving,
    naming the address it could not bind and the setting that moves it."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        taken = holder.getsockname()[1]
        # (The flags come last: they override server_command's port 0.)
        command, _container = server_command(variant, (flag, str(taken), other, "0"), None, None)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout
    assert "listening on" not in result.stdout
    message = result.stderr.strip()
    assert f"127.0.0.1:{taken}" in message, message
    assert "Address already in use" in message, message
    assert f"{flag} or {env}" in message, message


# -- a pool worker dies, again and again ---------------------------------------

POOL_SIZE = 2
KILL_ROUNDS = 5
LOAD_CLIENTS = 3
LOAD_LINES = (1, 15, 20, 22)  # written at once: each client keeps a pipeline full
LOAD_BATCHES = 20_000  # per client, a bound far above what the kill rounds take
IDLE_SECONDS = 5.0
IDLE_CPU_SECONDS = 0.1  # what the whole process group may use over IDLE_SECONDS


def resource_trackers(server: Server) -> list[int]:
    """The "spawn" context's semaphore bookkeeper: one per server, not a worker."""
    return [pid for pid in server.descendants() if "resource_tracker" in cmdline(pid)]


class PipeliningClient(threading.Thread):
    """Writes LOAD_LINES in one go and reads a reply to each, until stopped,
    pausing between batches while `go` is clear. A reply must be the answer
    or ERR server-error; a missing one (timeout, EOF) is a failure too."""

    def __init__(self, server: Server, go: threading.Event, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.go = go
        self.stop = stop
        self.replies = 0
        self.failures: list[str] = []

    def run(self) -> None:
        batch = b"".join(b"%d\n" % n for n in LOAD_LINES)
        deadline = time.monotonic() + 120
        try:
            with self.server.connect(timeout=30) as sock, sock.makefile("rb") as stream:
                for _ in range(LOAD_BATCHES):
                    self.go.wait(30)
                    if self.stop.is_set() or time.monotonic() > deadline:
                        return
                    sock.sendall(batch)
                    for n in LOAD_LINES:
                        reply = stream.readline()
                        if reply != answer(n) and not reply.startswith(b"ERR server-error "):
                            self.failures.append(f"fib({n}) answered {reply!r}")
                            return
                        self.replies += 1
        except OSError as error:  # a timeout included: a line left unanswered
            self.failures.append(f"{type(error).__name__}: {error}")


@pytest.mark.slow
@pytest.mark.parametrize("variant", POOL_VARIANTS)
def test_pool_returns_to_idle_after_repeated_worker_kills(variant, launch):
    """Each kill breaks the executor: its other workers must stop too (they
    may never get another task) and a full pool replace it, so the server
    ends up as it started: the same workers count, threads and idle CPU, and
    no semaphore left behind at exit."""
    server = launch(variant, "--pool-workers", str(POOL_SIZE))
    wait_for(lambda: server.metric("fib_connections_active") == 0, 5, "readiness client closed")
    time.sleep(0.2)  # a thread-per-client variant's thread ends just after its connection
    threads_before = thread_count(server.pid)
    trackers = resource_trackers(server)
    assert len(trackers) == 1, describe(server.descendants())
    assert len(pool_workers(server)) == POOL_SIZE, describe(server.descendants())

    go, stop = threading.Event(), threading.Event()
    go.set()
    clients = [PipeliningClient(server, go, stop) for _ in range(LOAD_CLIENTS)]
    for client in clients:
        client.start()
    dead_pools: set[int] = set()  # every worker of an executor a kill broke

    def live_pool() -> list[int]:
        return [pid for pid in pool_workers(server) if pid not in dead_pools]

    try:
        with server.connect(timeout=30) as long_client:
            for kill in range(KILL_ROUNDS):
                wait_for(lambda: len(live_pool()) == POOL_SIZE, 30, f"{POOL_SIZE} fresh workers")
                long_client.sendall(b"%d\n" % LONG_WORK)
                if kill % 2 == 0:
                    # The hard case: the load pauses until the long request is
                    # the only work left, so the other worker waits in the call
                    # queue holding the queue's lock. Its death leaves the busy
                    # worker unable ever to take another task: only the server
                    # can stop it.
                    go.clear()
                    wait_in_progress(server, 1)
                workers = live_pool()
                busy = busiest(workers)
                victim = busy if kill % 2 else next(pid for pid in workers if pid != busy)
                dead_pools.update(workers)
                os.kill(victim, signal.SIGKILL)
                go.set()
                reply = read_line(long_client)
                assert reply == answer(LONG_WORK) or reply.startswith(b"ERR server-error "), reply
    finally:
        stop.set()
        go.set()
        for client in clients:
            client.join(30)
    assert not any(client.is_alive() for client in clients), "a client still waits for a reply"
    assert [client.failures for client in clients] == [[]] * LOAD_CLIENTS
    assert all(client.replies for client in clients), [client.replies for client in clients]
    assert server.ask(b"20\n") == b"6765\n"

    wait_for(lambda: server.metric("fib_connections_active") == 0, 10, "every client closed")

    def settled() -> bool:
        return len(pool_workers(server)) == POOL_SIZE and thread_count(server.pid) <= threads_before

    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.1)
    cpu_before = group_cpu_seconds(server.pid)
    time.sleep(IDLE_SECONDS)
    idle_cpu = group_cpu_seconds(server.pid) - cpu_before
    state = (
        f"idle CPU {idle_cpu:.2f} s over {IDLE_SECONDS:.0f} s; "
        f"threads {thread_count(server.pid)} (before the kills {threads_before}); "
        f"processes: {describe(server.descendants())}"
    )
    assert idle_cpu < IDLE_CPU_SECONDS, state
    assert len(pool_workers(server)) == POOL_SIZE, state
    assert resource_trackers(server) == trackers, state
    assert len(server.descendants()) == POOL_SIZE + len(trackers), state
    assert thread_count(server.pid) <= threads_before, state

    # It still stops cleanly, leaving no process and no semaphore behind (the
    # resource tracker names leaked ones when the server is gone).
    os.kill(server.pid, signal.SIGTERM)
    assert server.process.wait(15) == 0, server.all_output()
    group_empties(server.pid)
    assert server.reader is not None
    server.reader.join(5)
    assert "leaked semaphore" not in server.all_output(), server.all_output()
