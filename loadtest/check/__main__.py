# python -m loadtest.check tcp://HOST:PORT: a server checked against the line protocol (cli.py).
import sys

from loadtest.check.cli import main

sys.exit(main())
