# python -m loadtest.timeline: record the convoy of each chosen variant and draw it.
import sys

from loadtest.timeline.cli import main

sys.exit(main())
