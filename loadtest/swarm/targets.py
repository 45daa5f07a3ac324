# loadtest/swarm/targets.py
#
# Where a variant listens, seen from the load generator. A variant name
# (docs/design.md §3) resolves to host:port through FIB_TARGETS:
#
#   local (default)  127.0.0.1:25001.. in table order: the ports that
#                    docker-compose.yml publishes on the host (docs/design.md §7)
#   compose          <variant>:25000, the service name inside the compose network
#   kubernetes       the same: deploy/k8s names each variant's Service like compose
#   a=h:p,b=h:p      an explicit map, e.g. threads=127.0.0.1:25000,coro=127.0.0.1:25004
#
# An explicit address (--fib-address host:port) overrides all of that: tests
# and the comparison runner use it for a variant started as a local process.
#
# Locust's Host (--host, the web UI's Host field) names a whole target:
# `tcp://HOST:PORT` (an address) or a variant name, bare (`coro`) or as
# `tcp://coro` (the web UI hints that a Host is a URL), at its FIB_TARGETS
# address. An address that FIB_TARGETS gives to a variant is labelled with
# that variant; any other address is labelled with itself, never with a guess.

from __future__ import annotations

import os
from dataclasses import dataclass

from services import VARIANTS

TARGETS_ENV = "FIB_TARGETS"
LOCAL_FIRST_PORT = 25001  # docs/design.md §7: variants published on 25001.. in table order
CONTAINER_PORT = 25000

HOST_SCHEME = "tcp://"

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


def format_address(address: Address) -> str:
    """(host, port) as `host:port` (`[v6-host]:port`), what parse_address reads."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise TargetError(f"unknown variant {variant!r}; the variants are: {', '.join(VARIANTS)}")
    return variant


def parse_targets(spec: str) -> dict[str, Address]:
    """Every variant's address under a FIB_TARGETS value (only the mapped ones for a map)."""
    spec = spec.strip()
    if spec in ("", "local"):
        return {v: ("127.0.0.1", LOCAL_FIRST_PORT + i) for i, v in enumerate(VARIANTS)}
    if spec in ("compose", "kubernetes"):
        return {v: (v, CONTAINER_PORT) for v in VARIANTS}
    targets: dict[str, Address] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        variant, sep, address = item.partition("=")
        if not sep:
            raise TargetError(
                f"{TARGETS_ENV} entry {item!r} is not variant=host:port "
                "(or use FIB_TARGETS=local, compose or kubernetes)"
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


def targets_spec(targets: str | None = None) -> str:
    """The FIB_TARGETS value in effect: `targets` if given, else the env var's (default local)."""
    return os.environ.get(TARGETS_ENV, "local") if targets is None else targets


def resolve(variant: str, *, address: str | None = None, targets: str | None = None) -> Address:
    """The (host, port) to load for `variant`.

    `address` (host:port) wins; else `targets` (default: the FIB_TARGETS env
    var, default `local`).
    """
    check_variant(variant)
    if address:
        return parse_address(address)
    spec = targets_spec(targets)
    mapped = parse_targets(spec)
    if variant not in mapped:
        raise TargetError(
            f"{TARGETS_ENV}={spec!r} has no address for {variant!r} (it maps: {', '.join(mapped)})"
        )
    return mapped[variant]


@dataclass(frozen=True)
class Target:
    """What a run loads: `variant` (the label of its figures) at `address`.

    `host` is a Locust Host that names it: tcp://VARIANT when it was named
    by its variant, else tcp://HOST:PORT.
    """

    variant: str
    address: Address
    host: str

    def __str__(self) -> str:
        address = format_address(self.address)
        if self.variant == address:
            return f"{address}, no variant's address in {TARGETS_ENV} (labelled {address!r})"
        return f"{self.variant} at {address}"


def variant_at(address: Address, targets: str | None = None) -> str | None:
    """The variant FIB_TARGETS puts at `address`, if any."""
    return next((v for v, a in parse_targets(targets_spec(targets)).items() if a == address), None)


def parse_host(host: str, *, targets: str | None = None) -> Target:
    """A Locust Host: `tcp://HOST:PORT`, or a variant name, bare or as `tcp://VARIANT`
    (its FIB_TARGETS address)."""
    text = host.strip()
    try:
        if (name := text.removeprefix(HOST_SCHEME)) in VARIANTS:
            return Target(name, resolve(name, targets=targets), HOST_SCHEME + name)
        if text.startswith(HOST_SCHEME):
            address = parse_address(text.removeprefix(HOST_SCHEME))
            variant = variant_at(address, targets) or format_address(address)
            return Target(variant, address, HOST_SCHEME + format_address(address))
    except TargetError as error:
        raise TargetError(f"Host {host!r}: {error}") from None
    raise TargetError(
        f"Host {host!r} is neither {HOST_SCHEME}HOST:PORT nor a variant "
        f"(bare or as {HOST_SCHEME}VARIANT): {', '.join(VARIANTS)}"
    )


def choose_target(
    host: str | None, variant: str, *, address: str | None = None, targets: str | None = None
) -> Target:
    """The target of a run: Locust's Host when given; else `variant` (--fib-target),
    at `address` (--fib-address) if given, else at its FIB_TARGETS address."""
    if host:
        return parse_host(host, targets=targets)
    if address:
        named = HOST_SCHEME + format_address(parsed := parse_address(address))
        return Target(check_variant(variant), parsed, named)
    return Target(variant, resolve(variant, targets=targets), HOST_SCHEME + variant)
