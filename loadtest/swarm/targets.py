# loadtest/swarm/targets.py
#
# Where a variant listens, seen from the load generator. A variant name
# (DESIGN §3) resolves to host:port through FIB_TARGETS:
#
#   local (default)  127.0.0.1:25001.. in table order: the ports that
#                    docker-compose.yml publishes on the host (DESIGN §7)
#   compose          <variant>:25000, the service name inside the compose network
#   a=h:p,b=h:p      an explicit map, e.g. threads=127.0.0.1:25000,coro=127.0.0.1:25004
#
# An explicit address (--fib-address host:port) overrides all of that: tests
# and the comparison runner use it for a variant started as a local process.

from __future__ import annotations

import os

from services import VARIANTS

TARGETS_ENV = "FIB_TARGETS"
LOCAL_FIRST_PORT = 25001  # DESIGN §7: variants published on 25001.. in table order
CONTAINER_PORT = 25000

Address = tuple[str, int]


class TargetError(ValueError):
    """A variant name, address or FIB_TARGETS value that cannot be used."""


def parse_address(text: str) -> Address:
    """`host:port` (or `[v6-host]:port`) as a (host, port) pair."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise TargetError(f"address {text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise TargetError(f"address {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise TargetError(f"address {text!r}: port {port} is out of range 1..65535")
    return host, port


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise TargetError(f"unknown variant {variant!r}; the variants are: {', '.join(VARIANTS)}")
    return variant


def parse_targets(spec: str) -> dict[str, Address]:
    """Every variant's address under a FIB_TARGETS value (only the mapped ones for a map)."""
    spec = spec.strip()
    if spec in ("", "local"):
        return {v: ("127.0.0.1", LOCAL_FIRST_PORT + i) for i, v in enumerate(VARIANTS)}
    if spec == "compose":
        return {v: (v, CONTAINER_PORT) for v in VARIANTS}
    targets: dict[str, Address] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        variant, sep, address = item.partition("=")
        if not sep:
            raise TargetError(
                f"{TARGETS_ENV} entry {item!r} is not variant=host:port "
                "(or use FIB_TARGETS=local or FIB_TARGETS=compose)"
            )
        variant = check_variant(variant.strip())
        if variant in targets:
            raise TargetError(f"{TARGETS_ENV} names {variant!r} twice")
        try:
            targets[variant] = parse_address(address)
        except TargetError as error:
            raise TargetError(f"{TARGETS_ENV} entry {item.strip()!r}: {error}") from None
    if not targets:
        raise TargetError(f"{TARGETS_ENV}={spec!r} maps no variant")
    return targets


def resolve(variant: str, *, address: str | None = None, targets: str | None = None) -> Address:
    """The (host, port) to load for `variant`.

    `address` (host:port) wins; else `targets` (default: the FIB_TARGETS env
    var, default `local`).
    """
    check_variant(variant)
    if address:
        return parse_address(address)
    spec = os.environ.get(TARGETS_ENV, "local") if targets is None else targets
    mapped = parse_targets(spec)
    if variant not in mapped:
        raise TargetError(
            f"{TARGETS_ENV}={spec!r} has no address for {variant!r} (it maps: {', '.join(mapped)})"
        )
    return mapped[variant]
