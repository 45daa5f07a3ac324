# loadtest/profile: flame graphs of one variant while the convoy runs
# (docs/design.md §6.8). `recording.py` starts the server under py-spy and
# drives the comparison's convoy at it, once per view; `report.py` writes
# report.md; `cli.py` is the command, `python -m loadtest.profile`.
