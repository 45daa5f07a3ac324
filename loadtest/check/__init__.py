# loadtest/check: any server that speaks the line protocol, checked from
# outside against docs/design.md §2 (§6.9). `cases.py` holds the cases and
# finds the server's limits by asking; `wire.py` is a connection with one
# deadline per case; `report.py` writes the summary, report.md and
# report.json; `cli.py` is the command, `python -m loadtest.check`.
