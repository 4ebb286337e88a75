"""``python -m checker``: the same as the ``checker`` command."""

import sys

from checker.console import main

sys.exit(main())
