"""``python -m node.cli``: the ``kith`` command without its console script."""

import sys

from node.cli import main

sys.exit(main())
