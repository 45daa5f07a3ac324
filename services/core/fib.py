# services/core/fib.py
#
# The talk's Fibonacci: naive exponential recursion, on purpose. Its CPU cost
# is the experiment (fib(30) ~0.045 s, fib(35) ~0.5 s on CPython 3.11-3.13),
# so it is never memoised. It lives in an importable module so that process
# pools can pickle it by reference.


def fib(n: int) -> int:
    # fib(0) = 0; for n >= 1 this is the talk's `1 if n <= 2 else ...`.
    if n <= 2:
        return 1 if n else 0
    return fib(n - 1) + fib(n - 2)
