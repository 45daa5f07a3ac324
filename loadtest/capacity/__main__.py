# python -m loadtest.capacity: capacity and latency curves (loadtest/capacity/runner.py).
import sys

from loadtest.capacity.runner import main

sys.exit(main())
