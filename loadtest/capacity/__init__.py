# loadtest/capacity: how many requests/s each variant serves before it saturates, and
# its latency on the way there (docs/design.md §6.4).
