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
    # Beyond the talk (docs/design.md §3.1): today's answers to its question.
    "gevent",
    "asyncio-uvloop",
    "prefork",
    "threads-interppool",
    "asyncio-interppool",
    "asyncio-tothread",
    "trio",
)
TALK_VARIANTS = VARIANTS[: VARIANTS.index("asyncio-procpool") + 1]
MODERN_VARIANTS = VARIANTS[len(TALK_VARIANTS) :]

# Variants that need a newer Python than the lab's floor (3.11): their
# containers run the image built for it (docker-compose.yml).
PYTHON_NEEDED = {"threads-interppool": (3, 14), "asyncio-interppool": (3, 14)}


def module_name(variant: str) -> str:
    return "services." + variant.replace("-", "_")
