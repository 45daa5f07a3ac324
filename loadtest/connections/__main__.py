# python -m loadtest.connections: what a connection costs, per variant.
import sys

from loadtest.connections.cli import main

sys.exit(main())
