# tests/loadtest/swarm/test_targets.py
#
# loadtest.swarm.targets in-process: a variant name through FIB_TARGETS,
# an explicit address, and Locust's Host (tcp://HOST:PORT or a variant),
# with the precedence of Host over --fib-target and --fib-address. Every bad
# input is an error that names it.

from __future__ import annotations

import re

import pytest

from loadtest.swarm.targets import (
    LOCAL_FIRST_PORT,
    Target,
    TargetError,
    choose_target,
    parse_host,
    parse_targets,
    resolve,
)
from services import VARIANTS

MAP = "threads=127.0.0.1:25000, coro=[::1]:25004"


def test_targets_local_compose_map_and_override():
    assert resolve("sync", targets="local") == ("127.0.0.1", LOCAL_FIRST_PORT)
    assert resolve("asyncio-procpool", targets="local") == ("127.0.0.1", 25009)
    assert resolve("coro", targets="compose") == ("coro", 25000)
    assert resolve("coro", targets=MAP) == ("::1", 25004)
    assert resolve("coro", targets=MAP, address="10.0.0.2:7") == ("10.0.0.2", 7)
    assert set(parse_targets("compose")) == set(VARIANTS)
    # deploy/k8s names each variant's Service like its compose service
    assert parse_targets("kubernetes") == parse_targets("compose")


@pytest.mark.parametrize(
    ("variant", "targets", "address", "message"),
    [
        ("nope", "local", None, "unknown variant 'nope'"),
        ("coro", "threads=127.0.0.1:1", None, "has no address for 'coro'"),
        ("coro", "coro=127.0.0.1", None, "is not host:port"),
        ("coro", "coro:127.0.0.1:1", None, "is not variant=host:port"),
        ("coro", "bogus=127.0.0.1:1", None, "unknown variant 'bogus'"),
        ("coro", "coro=h:1,coro=h:2", None, "names 'coro' twice"),
        ("coro", "local", "127.0.0.1:http", "is not a number"),
        ("coro", "local", "127.0.0.1:70000", "out of range"),
    ],
)
def test_targets_bad_input_says_why(variant, targets, address, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        resolve(variant, targets=targets, address=address)


@pytest.mark.parametrize(
    ("host", "targets", "expected"),
    [
        ("coro", "local", Target("coro", ("127.0.0.1", 25004), "tcp://coro")),
        (" tcp://coro ", "local", Target("coro", ("127.0.0.1", 25004), "tcp://coro")),
        ("coro", "compose", Target("coro", ("coro", 25000), "tcp://coro")),
        ("coro", MAP, Target("coro", ("::1", 25004), "tcp://coro")),
        # An address FIB_TARGETS gives to a variant is that variant ...
        (
            "tcp://127.0.0.1:25004",
            "local",
            Target("coro", ("127.0.0.1", 25004), "tcp://127.0.0.1:25004"),
        ),
        ("tcp://[::1]:25004", MAP, Target("coro", ("::1", 25004), "tcp://[::1]:25004")),
        ("tcp://coro:25000", "compose", Target("coro", ("coro", 25000), "tcp://coro:25000")),
        # ... any other is labelled with itself, not with a variant it may not be.
        (
            "tcp://127.0.0.1:40000",
            "local",
            Target("127.0.0.1:40000", ("127.0.0.1", 40000), "tcp://127.0.0.1:40000"),
        ),
    ],
)
def test_a_host_is_an_address_or_a_variant(host, targets, expected):
    assert parse_host(host, targets=targets) == expected


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("http://127.0.0.1:25004", "Host 'http://127.0.0.1:25004' is neither tcp://HOST:PORT"),
        ("corro", "Host 'corro' is neither tcp://HOST:PORT nor a variant"),
        ("", "Host '' is neither"),
        ("tcp://127.0.0.1", "Host 'tcp://127.0.0.1': address '127.0.0.1' is not host:port"),
        ("tcp://127.0.0.1:http", "Host 'tcp://127.0.0.1:http': address"),
        ("tcp://127.0.0.1:0", "port 0 is out of range 1..65535"),
        ("tcp://127.0.0.1:25004/", "port '25004/' is not a number"),
    ],
)
def test_a_bad_host_is_an_error_that_names_it(host, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_host(host, targets="local")


def test_a_variant_host_needs_its_address_in_the_map():
    with pytest.raises(TargetError, match=re.escape("Host 'sync': FIB_TARGETS=")):
        parse_host("sync", targets=MAP)


def test_host_wins_over_fib_target_and_fib_address():
    coro = ("127.0.0.1", 25004)
    assert choose_target("coro", "threads", targets="local").address == coro
    assert choose_target("coro", "threads", address="10.0.0.2:7", targets="local").address == coro
    # No Host: --fib-target at its FIB_TARGETS address, or at --fib-address.
    assert choose_target(None, "threads", targets="local") == Target(
        "threads", ("127.0.0.1", 25002), "tcp://threads"
    )
    assert choose_target("", "threads", address="10.0.0.2:7", targets="local") == Target(
        "threads", ("10.0.0.2", 7), "tcp://10.0.0.2:7"
    )
    with pytest.raises(TargetError, match="unknown variant 'nope'"):
        choose_target(None, "nope", address="10.0.0.2:7")
