"""``python -m opex_trio.cli``: the same as the ``opex-trio`` command."""

import sys

from . import main

sys.exit(main())
