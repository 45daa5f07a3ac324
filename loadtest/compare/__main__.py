# python -m loadtest.compare: every chosen variant through every chosen scenario.
import sys

from loadtest.compare.cli import main

sys.exit(main())
