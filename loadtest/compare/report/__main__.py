# python -m loadtest.compare.report: regenerate a report from its summary.json.
import sys

from loadtest.compare.report import main

sys.exit(main())
