"""``python -m celerylab.cli``: the same as the ``celerylab`` command."""

import sys

from . import main

sys.exit(main())
