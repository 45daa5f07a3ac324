# services: the Fibonacci micro-service of Beazley's PyCon 2015 talk, written
# once per concurrency model. Run one with `python -m services <variant>`.
#
# The variants, in the talk's order (docs/design.md §3). A name is the compose
# service, the `variant` label and the CLI name; its module is the name with
# "-" as "_".
VARIANTS = (
    "sync",
    "threads",
    "threads-procpool",
    "coro",
    "coro-threadpool",
    "coro-procpool",
    "coro-asyncsocket",
    "asyncio",
    "asyncio-procpool",
)


def module_name(variant: str) -> str:
    return "services." + variant.replace("-", "_")
