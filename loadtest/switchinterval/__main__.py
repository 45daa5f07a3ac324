# python -m loadtest.switchinterval: the convoy at each switch interval, against its law.
import sys

from loadtest.switchinterval.cli import main

sys.exit(main())
