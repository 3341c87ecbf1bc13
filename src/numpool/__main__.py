"""``python -m numpool``: the numpool command."""

import sys

from .cli import main

sys.exit(main())
